//! The framework-neutral request recording API the adapters share.
//!
//! An HTTP adapter uses the adapter core (`request::adapter`, hidden: it is
//! the adapters' plumbing): it turns its framework's request into a
//! [`RequestInfo`], starts an exchange, runs the handler inside it, and
//! hands the outcome back to it over `http` types; the core writes problem
//! details, `traceresponse`, and ends the span with the response body.
//! Underneath, [`Engine::start_request`] starts a
//! [`RequestSpan`], which records errors ([`RequestSpan::record_error`]),
//! panics ([`RequestSpan::record_panic`]) and ends with
//! [`RequestSpan::finish`]; code that is not an HTTP adapter (tests, a
//! custom transport) may use it directly.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};

use crate::Engine;
use crate::carrier::Carrier;
use crate::correlate::{FailureKind, RequestError, RequestOutcome};
use crate::error::{AppError, ErrorCode, ProblemDetails, Severity, codes, find_error_code};
use crate::exception::Failure;
use crate::panic::{CatchPanic, CaughtPanic};
use crate::propagation::w3c::TraceParent;

// Hidden, not private: the adapters (faultline-axum, -poem, -warp, -actix,
// -tonic, -reqwest) are crates of their own and build on it, so it cannot be
// `pub(crate)`; it is their plumbing, not an API for applications, and may
// change in any release. Everything only the adapters use is reached
// through it.
#[doc(hidden)]
pub mod adapter;
mod names;
mod recent;
mod rpc;

pub use rpc::{RpcEnd, RpcInfo};

/// The `traceresponse` header name.
pub const TRACERESPONSE: http::HeaderName = http::HeaderName::from_static("traceresponse");

/// What the engine needs to know of an incoming request.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct RequestInfo<'a> {
    /// The method.
    pub method: &'a Method,
    /// The matched route template in `{param}` form (`/users/{id}`), when a route matched.
    pub route: Option<&'a str>,
    /// The path, without the query.
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The HTTP version.
    pub version: Version,
    /// The request headers: an `http::HeaderMap`, or any other
    /// [`Carrier`] (a framework's own header map, read in place); `Sync`,
    /// so that a request future holding the info stays `Send`.
    pub headers: &'a (dyn Carrier + Sync),
    /// The `authority` of the request URI (HTTP/2), when present.
    pub authority: Option<&'a str>,
    /// The peer's address.
    pub client_address: Option<IpAddr>,
}

impl std::fmt::Debug for RequestInfo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestInfo")
            .field("method", self.method)
            .field("route", &self.route)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("scheme", &self.scheme)
            .field("version", &self.version)
            // A carrier has no `Debug`: the names of its headers.
            .field("headers", &self.headers.keys())
            .field("authority", &self.authority)
            .field("client_address", &self.client_address)
            .finish()
    }
}

impl<'a> RequestInfo<'a> {
    /// The view of a request from its parts: path, query, scheme (`http`
    /// when the URI has none) and authority from `uri`; no route and no
    /// peer address (see [`with_route`](Self::with_route),
    /// [`with_client_address`](Self::with_client_address)).
    pub fn new(
        method: &'a Method,
        uri: &'a http::Uri,
        version: Version,
        headers: &'a (dyn Carrier + Sync),
    ) -> Self {
        Self::from_parts(
            method,
            (uri.path(), uri.query()),
            (uri.scheme_str(), uri.authority().map(|a| a.as_str())),
            version,
            headers,
        )
    }

    /// The view of a request whose URI is not an `http` 1 one, from its
    /// parts, as [`new`](Self::new) takes them from an `http::Uri`: the
    /// path, the query (without `?`), the scheme (`http` when `None`) and
    /// the authority; no route and no peer address. Nothing is converted
    /// or copied.
    pub fn from_parts(
        method: &'a Method,
        (path, query): (&'a str, Option<&'a str>),
        (scheme, authority): (Option<&'a str>, Option<&'a str>),
        version: Version,
        headers: &'a (dyn Carrier + Sync),
    ) -> Self {
        RequestInfo {
            method,
            route: None,
            path,
            query,
            scheme: scheme.unwrap_or("http"),
            version,
            headers,
            authority,
            client_address: None,
        }
    }

    /// With the matched route template, when the router knows it.
    pub fn with_route(mut self, route: Option<&'a str>) -> Self {
        self.route = route;
        self
    }

    /// With the peer's address, when the transport has one.
    pub fn with_client_address(mut self, client_address: Option<IpAddr>) -> Self {
        self.client_address = client_address;
        self
    }

    /// With the scheme (`https` behind TLS), for a framework that knows it
    /// where the URI does not.
    pub fn with_scheme(mut self, scheme: &'a str) -> Self {
        self.scheme = scheme;
        self
    }
}

/// An error a handler returned, on its way from the handler's response to
/// the adapter, which records it and writes the problem details. Adapters
/// carry it in response extensions (it is cheap to clone).
#[derive(Clone)]
pub struct HandlerError {
    error: Arc<dyn StdError + Send + Sync + 'static>,
    type_name: &'static str,
    code: Option<ErrorCode>,
}

impl std::fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerError")
            .field("type", &self.type_name)
            .field("code", &self.code.map(|c| c.code()))
            .finish_non_exhaustive()
    }
}

impl HandlerError {
    /// Wraps any error; its code is looked up on it and its source chain.
    pub fn new<E: StdError + Send + Sync + 'static>(error: E) -> Self {
        let code = find_error_code(&error);
        HandlerError {
            error: Arc::new(error),
            type_name: std::any::type_name::<E>(),
            code,
        }
    }

    /// The error's code, when it has one.
    pub fn code(&self) -> Option<ErrorCode> {
        self.code
    }

    /// The HTTP status of the response: the code's, or 500 without a code.
    pub fn status(&self) -> StatusCode {
        self.code
            .map_or(StatusCode::INTERNAL_SERVER_ERROR, |c| c.status())
    }

    /// The error.
    pub fn error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        self.error.as_ref()
    }

    /// The problem details a client gets when no faultline layer is there to
    /// write them: the code and its title, no message (nothing unmasked leaves).
    pub fn fallback_problem(&self) -> ProblemDetails {
        let code = self.code.unwrap_or(codes::INTERNAL);
        ProblemDetails::new(code, code.title())
    }

    /// The client-facing detail (not yet masked): an [`AppError`]'s detail or
    /// message, another coded error's message, and a generic sentence for an
    /// error without a code (its message may hold internals).
    fn detail(&self) -> String {
        let err: &(dyn StdError + 'static) = self.error.as_ref();
        if let Some(app) = err.downcast_ref::<AppError>() {
            return app.detail().unwrap_or(app.message()).to_owned();
        }
        match self.code {
            Some(_) => err.to_string(),
            None => INTERNAL_DETAIL.to_owned(),
        }
    }
}

impl<E: StdError + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        HandlerError::new(error)
    }
}

/// The detail of a 500 whose cause must stay inside the process.
pub const INTERNAL_DETAIL: &str = "The server could not handle the request.";

/// The code of a framework's own error response (no route, wrong method,
/// unreadable body, ...), by status.
// Hidden, not private: adapter plumbing (the tonic adapter's), reached
// through `request::adapter`.
#[doc(hidden)]
pub fn rejection_code(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        400 => codes::BAD_REQUEST,
        401 => codes::UNAUTHORIZED,
        403 => codes::FORBIDDEN,
        404 => codes::ROUTE_NOT_FOUND,
        405 => codes::METHOD_NOT_ALLOWED,
        413 => codes::PAYLOAD_TOO_LARGE,
        415 => codes::UNSUPPORTED_MEDIA_TYPE,
        422 => codes::UNPROCESSABLE_CONTENT,
        429 => codes::TOO_MANY_REQUESTS,
        503 => codes::UNAVAILABLE,
        504 => codes::TIMEOUT,
        s if s >= 500 => codes::INTERNAL,
        _ => codes::BAD_REQUEST,
    }
}

/// What [`RequestSpan::record_response`] saw, for [`RequestSpan::end`].
#[derive(Debug, Clone, Copy)]
struct Responded {
    status: StatusCode,
    /// Whether the response set `error.type`.
    typed: bool,
    /// Whether error keeping exports the trace.
    kept: bool,
}

struct RecordedFailure {
    kind: FailureKind,
    code: Option<ErrorCode>,
    type_name: &'static str,
    message: String,
}

/// One request being traced. Dropping it without [`finish`](RequestSpan::finish)
/// (the client went away, the future was cancelled) ends the span marked
/// `faultline.request.cancelled`.
///
/// A request on an [excluded route](crate::config::TracingConfig::excluded_routes)
/// gets a `RequestSpan` without a span: its context is the incoming one
/// (so that outgoing calls carry the caller's trace), it records and counts
/// nothing, and errors are answered without a trace id.
pub struct RequestSpan {
    engine: Engine,
    cx: Context,
    started: SystemTime,
    method: Method,
    route: Option<Cow<'static, str>>,
    parent_span_id: Option<opentelemetry::trace::SpanId>,
    /// Boxed: only an error or a panic has one, and every request's
    /// future (which moves this span) is smaller without it.
    failure: Option<Box<RecordedFailure>>,
    /// Once the response's headers are out ([`RequestSpan::record_response`]).
    responded: Option<Responded>,
    excluded: bool,
    finished: bool,
    /// The RPC system and method, for a span started by [`Engine::start_rpc`].
    rpc: Option<(&'static str, Cow<'static, str>)>,
}

impl std::fmt::Debug for RequestSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSpan")
            .field("trace_id", &self.trace_id())
            .field("method", &self.method)
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

/// The semantic-convention name of a standard HTTP method (`None` for any
/// other, which the conventions record as `_OTHER`).
// Hidden, not private: plumbing the outgoing-call adapter (faultline-reqwest)
// shares with the server side (through `request::adapter`), not an API for
// applications.
#[doc(hidden)]
pub fn method_name(m: &Method) -> Option<&'static str> {
    Some(match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => return None,
    })
}

fn version_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// The span name `"{method} {route}"` and the route, shared when the route
/// is one of the kept ones (`names`), otherwise made here.
fn span_name_and_route(
    method: &'static str,
    route: &str,
) -> (Cow<'static, str>, Cow<'static, str>) {
    match names::span_name(method, route) {
        Some((name, route)) => (Cow::Borrowed(name), Cow::Borrowed(route)),
        None => (
            Cow::Owned(join(method, route)),
            Cow::Owned(route.to_owned()),
        ),
    }
}

/// `"{a} {b}"` without the formatting machinery (every request names its
/// span this way).
fn join(a: &str, b: &str) -> String {
    let mut out = String::with_capacity(a.len() + 1 + b.len());
    out.push_str(a);
    out.push(' ');
    out.push_str(b);
    out
}

/// An IP address as text; IPv4 (nearly every request) without the
/// formatting machinery.
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    // Written on the stack, then copied once at its exact length.
    let mut buf = [0u8; 16];
    let mut len = 0;
    for octet in v4.octets() {
        let (h, t, o) = (octet / 100, octet / 10 % 10, octet % 10);
        buf[len] = b'0' + h;
        len += usize::from(h > 0);
        buf[len] = b'0' + t;
        len += usize::from(octet >= 10);
        buf[len] = b'0' + o;
        buf[len + 1] = b'.';
        len += 2;
    }
    // Only ASCII digits and dots were written; the last dot is cut.
    std::str::from_utf8(&buf[..len - 1])
        .unwrap_or_default()
        .to_owned()
}

/// Splits `host[:port]` (IPv6 in brackets).
fn split_host(authority: &str) -> (&str, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (host, port);
        }
        return (authority, None);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, port.parse().ok()),
        _ => (authority, None),
    }
}

fn header_attribute(
    prefix: &str,
    name: &http::HeaderName,
    headers: &dyn Carrier,
) -> Option<KeyValue> {
    let mut values: Vec<StringValue> = Vec::new();
    headers.visit_header(name, &mut |v| {
        values.push(StringValue::from(String::from_utf8_lossy(v).into_owned()));
        true
    });
    (!values.is_empty()).then(|| {
        KeyValue::new(
            format!("{prefix}{name}"),
            Value::Array(Array::String(values)),
        )
    })
}

impl Engine {
    /// Starts the server span of a request: extracts the parent (or link)
    /// from the headers, names the span `"{METHOD} {route}"` (the method
    /// alone without a route), and sets the HTTP semantic-convention
    /// attributes and the configured request headers.
    ///
    /// A request on an [excluded route](crate::config::TracingConfig::excluded_routes)
    /// starts no span: the incoming context is only extracted, to be made
    /// current while the handler runs.
    pub fn start_request(&self, info: &RequestInfo<'_>) -> RequestSpan {
        let config = self.config();
        if config.excluded_routes().matches(info.path) {
            let (cx, _) = self.extract_from(info.headers, info.client_address);
            return RequestSpan::without_span(self, cx, info.method.clone());
        }
        let known = method_name(info.method);
        let method_text = known.unwrap_or("_OTHER");
        let span_method = known.unwrap_or("HTTP");
        let (name, route) = match info.route {
            Some(route) => {
                let (name, route) = span_name_and_route(span_method, route);
                (name, Some(route))
            }
            None => (Cow::Borrowed(span_method), None),
        };
        let mut attributes = Vec::with_capacity(12 + config.capture_request_headers().len());
        attributes.push(KeyValue::new("http.request.method", method_text));
        if known.is_none() {
            attributes.push(KeyValue::new(
                "http.request.method_original",
                info.method.as_str().to_owned(),
            ));
        }
        if let Some(route) = &route {
            attributes.push(KeyValue::new("http.route", route.clone()));
        }
        // A route without parameters is its own path: its shared text
        // serves; any other path is shared with the thread's last requests
        // for it (a router that tells the route only afterwards).
        let path = match &route {
            Some(Cow::Borrowed(route)) if *route == info.path => Value::from(*route),
            _ => recent::text(recent::Kind::Path, info.path),
        };
        attributes.push(KeyValue::new("url.path", path));
        attributes.push(KeyValue::new(
            "url.scheme",
            if info.scheme == "https" {
                "https"
            } else {
                "http"
            },
        ));
        if let Some(q) = info.query.filter(|q| !q.is_empty()) {
            attributes.push(KeyValue::new("url.query", q.to_owned()));
        }
        let host = info
            .authority
            .or_else(|| info.headers.header(&http::header::HOST));
        if let Some(host) = host {
            let (address, port) = recent::authority(host, split_host);
            attributes.push(KeyValue::new("server.address", address));
            if let Some(port) = port {
                attributes.push(KeyValue::new("server.port", i64::from(port)));
            }
        }
        attributes.push(KeyValue::new(
            "network.protocol.version",
            version_name(info.version),
        ));
        if let Some(ua) = info.headers.header(&http::header::USER_AGENT) {
            attributes.push(KeyValue::new(
                "user_agent.original",
                recent::text(recent::Kind::UserAgent, ua),
            ));
        }
        if let Some(ip) = info.client_address {
            attributes.push(KeyValue::new("client.address", recent::client(ip, ip_text)));
        }
        for header in config.capture_request_headers() {
            if let Some(kv) = header_attribute("http.request.header.", header, info.headers) {
                attributes.push(kv);
            }
        }

        // One clock read for the span's start and the request's duration
        // (the span's end is the other).
        let started = SystemTime::now();
        let (cx, parent_span_id) =
            self.start_server(name, attributes, info.headers, info.client_address, started);
        RequestSpan {
            parent_span_id,
            engine: self.clone(),
            cx,
            started,
            method: info.method.clone(),
            route,
            failure: None,
            responded: None,
            excluded: false,
            finished: false,
            rpc: None,
        }
    }
}

impl Engine {
    /// Whether requests for `path` (without the query) are on an
    /// [excluded route](crate::config::TracingConfig::excluded_routes): an
    /// adapter asks first, to take its cheapest path for them.
    #[inline]
    pub fn excludes(&self, path: &str) -> bool {
        self.config().excluded_routes().matches(path)
    }
}

impl RequestSpan {
    /// A request on an excluded route: no span, `cx` the incoming context.
    pub(crate) fn without_span(engine: &Engine, cx: Context, method: Method) -> RequestSpan {
        RequestSpan {
            engine: engine.clone(),
            cx,
            started: SystemTime::UNIX_EPOCH,
            method,
            route: None,
            parent_span_id: None,
            failure: None,
            responded: None,
            excluded: true,
            finished: false,
            rpc: None,
        }
    }

    /// The context holding the server span (and the incoming baggage).
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The trace id, 32 lowercase hex digits, when the span is valid.
    pub fn trace_id(&self) -> Option<String> {
        Engine::trace_id(&self.cx)
    }

    /// Runs `handler` with this request's context current (as
    /// OpenTelemetry's current context and as [`RequestContext::current`]),
    /// catching a panic.
    pub fn instrument<F: std::future::Future>(&self, handler: F) -> CatchPanic<F> {
        crate::panic::install_hook();
        CatchPanic::for_request(handler, self.cx.clone())
    }

    /// Sets the route once the framework has matched it (renames the span).
    pub fn set_route(&mut self, route: &str) {
        if self.excluded || self.route.as_deref() == Some(route) {
            return;
        }
        let span = self.cx.span();
        let method = method_name(&self.method).unwrap_or("HTTP");
        let (name, route) = span_name_and_route(method, route);
        span.update_name(name);
        span.set_attribute(KeyValue::new("http.route", route.clone()));
        self.route = Some(route);
    }

    /// Records an error the handler returned (an `exception` event).
    pub fn record_error(&mut self, error: &HandlerError) -> Option<ErrorCode> {
        if self.excluded {
            return error.code;
        }
        let failure = Failure::Error {
            error: error.error.as_ref() as &(dyn StdError + 'static),
            type_name: Some(error.type_name),
        };
        let code = self.engine.record_failure(&self.cx, &failure);
        self.failure = Some(Box::new(RecordedFailure {
            kind: FailureKind::Error,
            code,
            type_name: error.type_name,
            message: error.error.to_string(),
        }));
        code
    }

    /// Records a panic of the handler.
    pub fn record_panic(&mut self, panic: &CaughtPanic) {
        if !self.excluded {
            self.engine.record_failure(&self.cx, &panic.as_failure());
        }
        // Logged in the request's context: the line carries the server
        // span's trace and span ids (top-level in JSON) like the handler's
        // own lines, and the OTLP log record the same.
        let _current = self.cx.clone().attach();
        tracing::error!(
            "request handler panicked: {}",
            self.engine.masker().mask(&panic.message)
        );
        self.failure = Some(Box::new(RecordedFailure {
            kind: FailureKind::Panic,
            code: Some(codes::INTERNAL),
            type_name: "panic",
            message: panic.message.clone(),
        }));
    }

    /// Problem details for a recorded error: its code, the masked detail and
    /// this request's trace id.
    pub fn problem_for_error(&self, error: &HandlerError, instance: &str) -> ProblemDetails {
        let code = error.code.unwrap_or(codes::INTERNAL);
        self.problem(code, &error.detail(), instance)
    }

    /// Problem details for a panic: code 5000, nothing of the panic text.
    pub fn problem_for_panic(&self, instance: &str) -> ProblemDetails {
        self.problem(codes::INTERNAL, INTERNAL_DETAIL, instance)
    }

    /// Problem details for a framework's own error response (no route, wrong
    /// method, unreadable body, an empty 5xx), the same on every adapter: the
    /// code by status (400 → 4000, 404 → 4040, ...; `RESOURCE_NOT_FOUND` for a 404 on a
    /// route that matched, which is the handler's "no such thing", not "no
    /// such route"), the response's text as the detail (masked; when empty,
    /// the code's title, or a fixed sentence for a 5xx), the response's
    /// status kept. An adapter passes an empty text where the framework's own
    /// text could name internals.
    pub fn rejection_problem(
        &self,
        status: StatusCode,
        framework_text: &str,
        route_matched: bool,
        instance: &str,
    ) -> ProblemDetails {
        let code = if status == StatusCode::NOT_FOUND && route_matched {
            codes::RESOURCE_NOT_FOUND
        } else {
            rejection_code(status)
        };
        let text = framework_text.trim();
        let detail = match (text.is_empty(), status.is_server_error()) {
            (false, _) => text,
            (true, true) => INTERNAL_DETAIL,
            (true, false) => code.title(),
        };
        let mut problem = self.problem(code, detail, instance);
        problem.status = status.as_u16();
        problem
    }

    /// Problem details for `code` with `detail` (masked) and the trace id,
    /// when that trace is exported (see [`exports_trace`](Self::exports_trace)).
    pub fn problem(&self, code: ErrorCode, detail: &str, instance: &str) -> ProblemDetails {
        let mut p = ProblemDetails::new(code, detail).with_instance(instance);
        if self.exports_trace()
            && let Some(t) = self.trace_id()
        {
            p = p.with_trace_id(t);
        }
        p.masked(self.engine.masker())
    }

    /// Whether this request's span reaches the exporters if the request
    /// ends in an error: it is recorded (tracing on) and sampled, or error
    /// keeping will export it. A problem's `trace_id` is given only then,
    /// so that it always leads to a trace: with tracing off, or sampling
    /// off and error keeping off, an error response carries none.
    pub fn exports_trace(&self) -> bool {
        let span = self.cx.span();
        span.is_recording()
            && (span.span_context().is_sampled() || self.engine.config().keep_errors().enabled())
    }

    /// Ends the span with the response status and headers, tells the
    /// correlators, and returns the `traceresponse` header value: for a
    /// response whose body is already sent, or that has none
    /// ([`record_response`](Self::record_response) then [`end`](Self::end) in one call).
    pub fn finish(
        mut self,
        status: StatusCode,
        response_headers: &HeaderMap,
    ) -> Option<HeaderValue> {
        let header = self.record_response(status, response_headers);
        self.end(None, None);
        header
    }

    /// Whether the request is on an excluded route (no span of its own).
    pub fn is_excluded(&self) -> bool {
        self.excluded
    }

    /// The request's method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Records the response as its headers go out: status, captured
    /// headers, `error.type`, error keeping; returns the `traceresponse`
    /// header value. The span stays open until [`end`](Self::end) (at the
    /// end of the response body). `None` on an excluded route.
    pub fn record_response(
        &mut self,
        status: StatusCode,
        response_headers: &HeaderMap,
    ) -> Option<HeaderValue> {
        self.record_response_ids(status, response_headers)
            .map(|ids| ids.to_header_value())
    }

    /// [`record_response`](Self::record_response), the `traceresponse`
    /// returned as the ids it carries: an adapter whose framework has a
    /// header type of its own writes its value from them once
    /// ([`TraceParent::write`]).
    pub fn record_response_ids(
        &mut self,
        status: StatusCode,
        response_headers: &HeaderMap,
    ) -> Option<TraceParent> {
        if self.excluded {
            return None;
        }
        let span = self.cx.span();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        ));
        for header in self.engine.config().capture_response_headers() {
            if let Some(kv) = header_attribute("http.response.header.", header, response_headers) {
                span.set_attribute(kv);
            }
        }
        let error_type: Option<Cow<'static, str>> = match self.failure.as_deref() {
            Some(f) if f.kind == FailureKind::Panic => Some(Cow::Borrowed("panic")),
            Some(RecordedFailure { code: Some(c), .. }) => Some(Cow::Borrowed(c.name())),
            _ if status.is_server_error() => Some(Cow::Owned(status.as_u16().to_string())),
            _ => None,
        };
        let typed = error_type.is_some();
        if let Some(t) = error_type {
            span.set_attribute(KeyValue::new("error.type", t));
        }
        if status.is_server_error() && self.failure.is_none() {
            span.set_status(Status::error(
                status.canonical_reason().unwrap_or("server error"),
            ));
        }
        let error_response = self.failure.is_some()
            || status.is_server_error()
            || (status.is_client_error()
                && response_headers
                    .get(http::header::CONTENT_TYPE)
                    .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json")));
        let kept = self.keep_if_error(error_response);
        self.responded = Some(Responded {
            status,
            typed,
            kept,
        });
        let sc = span.span_context();
        sc.is_valid().then(|| TraceParent::from_span_context(sc))
    }

    /// Ends the span after [`record_response`](Self::record_response), when the response
    /// body has ended: `body_size`, the bytes sent
    /// (`http.response.body.size`), when known; `cut_short`, the
    /// `error.type` of a body that did not reach its end (the client went
    /// away), when it did not. Tells the correlators (the request's
    /// duration ends here).
    pub fn end(mut self, body_size: Option<u64>, cut_short: Option<&'static str>) {
        // Without `record_response` first (or on an excluded route), dropping says
        // what there is to say.
        let Some(Responded {
            status,
            typed,
            kept,
        }) = self.responded.filter(|_| !self.excluded)
        else {
            return;
        };
        self.finished = true;
        let span = self.cx.span();
        if let Some(size) = body_size {
            span.set_attribute(KeyValue::new(
                "http.response.body.size",
                i64::try_from(size).unwrap_or(i64::MAX),
            ));
        }
        if let Some(cut) = cut_short {
            if !typed {
                span.set_attribute(KeyValue::new("error.type", cut));
            }
            span.set_status(Status::error(cut));
        }
        self.close(status.as_u16(), kept, None);
    }

    /// Ends the span and tells the correlators: through
    /// [`Correlator::on_rpc_end`](crate::correlate::Correlator::on_rpc_end)
    /// when `rpc` (the status code name) is given. `kept`: an unsampled
    /// span kept for export by error keeping.
    fn close(&mut self, status: u16, kept: bool, rpc: Option<&str>) {
        self.finished = true;
        let span = self.cx.span();
        let sc = span.span_context().clone();
        let ended = SystemTime::now();
        span.end_with_timestamp(ended);
        if !self.engine.has_correlators() {
            return;
        }
        let masked;
        let error = match &self.failure {
            Some(f) => {
                masked = self.engine.masker().mask(&f.message).into_owned();
                Some(RequestError {
                    kind: f.kind,
                    code: f.code,
                    severity: match f.kind {
                        FailureKind::Panic => Severity::Critical,
                        FailureKind::Error => f.code.map_or(Severity::Error, |c| c.severity()),
                    },
                    type_name: f.type_name,
                    message: &masked,
                })
            }
            None => None,
        };
        let outcome = RequestOutcome {
            trace_id: sc.trace_id(),
            span_id: sc.span_id(),
            parent_span_id: self.parent_span_id,
            sampled: sc.is_sampled() || kept,
            method: self.method.as_str(),
            route: self.route.as_deref().unwrap_or(""),
            status,
            // The span's own duration (a clock set back gives zero).
            duration: ended.duration_since(self.started).unwrap_or_default(),
            error,
        };
        match (&self.rpc, rpc) {
            (Some((system, method)), Some(status_code)) => {
                self.engine.notify_rpc_end(&crate::correlate::RpcOutcome {
                    request: outcome,
                    system,
                    method,
                    status_code,
                })
            }
            _ => self.engine.notify_request_end(&outcome),
        }
    }

    /// Error keeping: whether an unsampled request that ended in an error
    /// (`error_response`) is kept for export all the same, so that its
    /// trace id leads somewhere; marks the span when it is.
    fn keep_if_error(&self, error_response: bool) -> bool {
        let span = self.cx.span();
        let kept = error_response
            && !span.span_context().is_sampled()
            && span.is_recording()
            && self.engine.config().keep_errors().enabled();
        if kept {
            span.set_attribute(KeyValue::new(crate::export::KEPT_ATTRIBUTE, "error"));
        }
        kept
    }
}

impl Drop for RequestSpan {
    fn drop(&mut self) {
        if !self.finished && !self.excluded {
            let span = self.cx.span();
            span.set_attribute(KeyValue::new("faultline.request.cancelled", true));
            span.end();
        }
    }
}

/// The request's trace as handlers see it through their adapter's
/// extractor (each adapter's `RequestTrace` dereferences to it): trace id,
/// span id, baggage and the OpenTelemetry context (to carry into spawned
/// tasks). Without the adapter's layer, everything is `None`.
#[derive(Debug, Clone, Default)]
pub struct HandlerTrace(Option<RequestContext>);

impl HandlerTrace {
    /// The trace of a request context (`None`: no layer).
    pub fn new(cx: Option<RequestContext>) -> Self {
        HandlerTrace(cx)
    }
    /// The trace id (32 lowercase hex digits).
    pub fn trace_id(&self) -> Option<String> {
        self.0.as_ref().and_then(RequestContext::trace_id)
    }
    /// The server span's id.
    pub fn span_id(&self) -> Option<String> {
        self.0.as_ref().and_then(RequestContext::span_id)
    }
    /// A baggage value of the request.
    pub fn baggage(&self, key: &str) -> Option<&str> {
        self.0.as_ref().and_then(|c| c.baggage(key))
    }
    /// The OpenTelemetry context of the request (empty without the layer).
    pub fn context(&self) -> Context {
        self.0
            .as_ref()
            .map(|c| c.context().clone())
            .unwrap_or_default()
    }
}

/// What a handler's context gives it: the trace id and baggage of the
/// request. Adapters put one in each request's extensions (or their
/// framework's equivalent) for their extractors.
#[derive(Debug, Clone)]
pub struct RequestContext {
    cx: Context,
}

impl RequestContext {
    /// The request context of `span`.
    pub fn of(span: &RequestSpan) -> Self {
        RequestContext {
            cx: span.cx.clone(),
        }
    }
    /// The context of the request whose handler is running on this thread,
    /// inside an adapter's layer ([`RequestSpan::instrument`]); `None`
    /// elsewhere (outside the layer, in a task the handler spawned). Unlike
    /// `opentelemetry::Context::current()`, it is the server span's context
    /// even where the handler has made a span of its own current.
    pub fn current() -> Option<Self> {
        crate::panic::current_request().map(|cx| RequestContext { cx })
    }

    /// Whether a request's handler is running on this thread
    /// ([`current`](Self::current) is `Some`), asked without cloning the
    /// request's context.
    pub fn is_current() -> bool {
        crate::panic::in_request()
    }

    /// The OpenTelemetry context (server span and baggage); attach it to
    /// carry the request's trace into a spawned task.
    pub fn context(&self) -> &Context {
        &self.cx
    }
    /// The trace id, 32 lowercase hex digits.
    pub fn trace_id(&self) -> Option<String> {
        Engine::trace_id(&self.cx)
    }
    /// The server span's id, 16 lowercase hex digits.
    pub fn span_id(&self) -> Option<String> {
        let sc = self.cx.span().span_context().clone();
        sc.is_valid().then(|| sc.span_id().to_string())
    }
    /// A baggage value of the request.
    pub fn baggage(&self, key: &str) -> Option<&str> {
        crate::propagation::baggage::baggage(&self.cx).and_then(|b| b.get(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn client_addresses_are_written_as_the_standard_library_writes_them(v4 in any::<u32>(), v6 in any::<u128>()) {
            let v4 = IpAddr::from(std::net::Ipv4Addr::from(v4));
            prop_assert_eq!(ip_text(v4), v4.to_string());
            let v6 = IpAddr::from(std::net::Ipv6Addr::from(v6));
            prop_assert_eq!(ip_text(v6), v6.to_string());
        }
    }

    #[test]
    fn client_address_text_has_no_spare_capacity() {
        let text = ip_text(IpAddr::from([127, 0, 0, 1]));
        assert_eq!(text, "127.0.0.1");
        assert_eq!(text.capacity(), text.len());
    }
}
