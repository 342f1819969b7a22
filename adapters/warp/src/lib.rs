//! faultline's warp adapter: [`traced`] wraps a warp filter in a service that
//! traces every request, and [`route`] names each route's span.
//!
//! ```no_run
//! use faultline_engine::error::{AppError, ErrorCode};
//! use faultline_engine::Engine;
//! use faultline_engine::config::{ExporterKind, TracingConfig};
//! use faultline_warp::{Error, RequestTrace};
//! use warp::{Filter, Rejection};
//!
//! const USER_NOT_FOUND: ErrorCode =
//!     ErrorCode::new(1001, "USER_NOT_FOUND", http::StatusCode::NOT_FOUND);
//!
//! async fn user(id: u32, trace: RequestTrace) -> Result<String, Rejection> {
//!     // An `Error` (any error converts into it) becomes RFC 9457
//!     // problem+json with `code` and `trace_id`.
//!     let error = AppError::new(USER_NOT_FOUND, format!("no user {id} (trace {:?})", trace.trace_id()));
//!     Err(Error::from(error).into())
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
//! let users = warp::path!("users" / u32)
//!     .and(faultline_warp::route("/users/{id}")) // the span is `GET /users/{id}`
//!     .and(warp::get())
//!     .and(faultline_warp::trace())
//!     .and_then(user);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! faultline_warp::traced(engine, users)
//!     .serve(listener)
//!     .graceful(async { tokio::signal::ctrl_c().await.unwrap_or(()) })
//!     .run()
//!     .await;
//! # Ok(()) }
//! ```
//!
//! For every request the [`Traced`] service extracts the incoming trace
//! context, starts a server span, runs the whole filter (every filter and
//! the handler) inside the span's context, catches a panic (answering 500
//! problem+json, nothing of the panic text in it), turns handler errors
//! ([`Error`]) and warp's own rejections (no route, wrong method, unreadable
//! body, ...) into problem details carrying the trace id, adds
//! `traceresponse`, and ends the span.
//!
//! The span ends when the response body ends (a streamed body is timed to
//! its last byte), and requests on the configured excluded routes are not
//! traced: see the engine's adapter core (`faultline_engine::request::adapter`),
//! which every faultline HTTP adapter shares.
//!
//! When a correlator serves metrics (the Prometheus plugin), [`Traced`]
//! also answers `GET /metrics` (the configured
//! [`metrics_path`](faultline_engine::config::TracingConfig::metrics_path))
//! itself, untraced.
//!
//! # Route templates
//!
//! warp has no route templates, so each route declares its own with
//! [`route`], in the `{param}` form (`/users/{id}`), placed **after the path
//! filters** (`warp::path!` ends the path itself) and before the method,
//! body and handler: the span of a request that reached it is named
//! `"{METHOD} {template}"` and gets `http.route`, even when a later filter
//! rejects it (wrong method, unreadable body). A request that matched no
//! path keeps the method alone as its span name (`GET`). Placed before the
//! path filters, `route` would name requests that the path then rejects.
//!
//! # Serving
//!
//! [`Traced::serve`] runs a hyper server like `warp::serve` (HTTP/1 and
//! HTTP/2, graceful shutdown), each request's future unboxed. [`Traced`]
//! is also a tower `Service` for your own server loop (its future boxed
//! once, as a tower service must name it); insert a [`ClientAddr`] into
//! each request's extensions there to get `client.address`. warp's
//! `warp::addr::remote()` reads an extension only warp's own server sets:
//! under faultline's server use [`remote`], which works under both.
//!
//! Code in a handler that spawns a task carries the request's context along
//! with `opentelemetry::trace::FutureExt::with_context(fut, trace.context())`
//! (or attaches it inside the task).
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use faultline_engine::Engine;
use faultline_engine::request::adapter::{
    self, Answering, Call, Exchange, Excluded, FrameworkRejection, HttpRules, TracedBody, WithPeer,
};
use faultline_engine::request::{HandlerTrace, RequestContext, RequestInfo};
use http::{Request, StatusCode};
use hyper::body::Incoming;
use tower::Service;
use warp::filters::body::BodyDeserializeError;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

pub use faultline_engine as engine;
/// The warp crate this adapter is built on, for code that names its types.
pub use warp;

/// Names the body type of a response: warp does not export its own, which
/// [`TracedResponse`] wraps. Public only because that type alias is.
#[doc(hidden)]
pub trait BodyOf {
    /// The body type.
    type Body;
}

impl<B> BodyOf for http::Response<B> {
    type Body = B;
}

/// The responses of [`Traced`]: warp's, with a body that ends the
/// request's span when it ends.
pub type TracedResponse = http::Response<TracedBody<Body>>;

/// warp's response body.
type Body = <Response as BodyOf>::Body;

/// On an error response: the user's filter replied with it (rather than
/// rejected), so its text becomes the problem's detail.
#[derive(Debug, Clone, Copy)]
struct Replied;

/// Wraps `filter` (all of an application's routes) in a [`Traced`] service
/// that traces every request with `engine`.
pub fn traced<F: Routes>(engine: Engine, filter: F) -> Traced<F> {
    Traced { engine, filter }
}

/// A warp filter traced by faultline: a tower `Service` (cheap to clone),
/// served by [`Traced::serve`] or by your own hyper server. Made by [`traced`].
#[derive(Clone)]
pub struct Traced<F> {
    engine: Engine,
    filter: F,
}

impl<F> std::fmt::Debug for Traced<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traced").finish_non_exhaustive()
    }
}

/// The peer address of a request's connection, in the request's extensions:
/// insert it when you serve a [`Traced`] with your own server loop.
/// [`Traced::serve`] needs none: it knows each connection's peer (and lends
/// it to [`remote`] while the connection is polled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

impl<F: Routes> Traced<F> {
    /// A server accepting connections on `listener`; start it with
    /// [`Server::run`].
    pub fn serve(self, listener: tokio::net::TcpListener) -> Server<F> {
        Server {
            traced: self,
            listener,
            signal: None,
        }
    }

    /// One request, answered by a future of a type the server names
    /// (nothing boxed): a scrape at once; an excluded route with the
    /// incoming context only; any other traced.
    /// `peer`: the connection's peer address.
    #[inline(always)]
    fn answer<B: ReqBody>(
        &self,
        req: Request<B>,
        peer: Option<SocketAddr>,
    ) -> Answering<impl Call<Future: Handler> + use<F, B>, Body, Warp> {
        let (method, uri, headers) = (req.method(), req.uri(), req.headers());
        if let Some(metrics) = adapter::scrape(&self.engine, method, uri.path(), headers) {
            return Answering::ready(Ok(metrics.map(|text| TracedBody::new(text.into()))));
        }
        let client = peer.map(|a| a.ip());
        if self.engine.excludes(uri.path()) {
            let excluded = Excluded::start(&self.engine, headers, client);
            let (method, uri) = (method.clone(), uri.clone());
            let call = call_later(self.filter.clone(), req);
            return Answering::excluded(excluded, &self.engine, method, uri, call);
        }
        let info =
            RequestInfo::new(method, uri, req.version(), headers).with_client_address(client);
        let exchange = Exchange::start(&self.engine, &info, uri.clone());
        Answering::traced(exchange, call_later(self.filter.clone(), req))
    }
}

impl<F: Routes, B: ReqBody> Service<Request<B>> for Traced<F> {
    type Response = TracedResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<TracedResponse, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let peer = req.extensions().get::<ClientAddr>().map(|a| a.0);
        Box::pin(self.answer(req, peer))
    }
}

/// The future of warp's service for the request.
trait Handler: Future<Output = Result<Response, Infallible>> + Send {}

impl<T: Future<Output = Result<Response, Infallible>> + Send> Handler for T {}

/// What [`traced`] takes: all of an application's routes, a warp filter
/// that extracts a reply (`Reply`) or rejects.
pub trait Routes:
    Filter<Extract = (Self::Reply,), Error = Rejection> + Clone + Send + Sync + 'static
{
    /// What the routes reply with.
    type Reply: Reply + 'static;
}

impl<F, R> Routes for F
where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    type Reply = R;
}

/// A request body warp's service takes.
pub trait ReqBody: http_body::Body<Error: Into<BoxError>> + Send + Sync + 'static {}

impl<B: http_body::Body<Error: Into<BoxError>> + Send + Sync + 'static> ReqBody for B {}

/// Any error, boxed.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// warp's service for `filter` and its recovery, to be called with `req`
/// when the request's future is first polled ([`adapter::Deferred`]):
/// inside the request's context, since warp runs some filters while it
/// builds its future.
#[inline(always)]
fn call_later<F: Routes, B: ReqBody>(filter: F, req: Request<B>) -> impl Call<Future: Handler> {
    let filter = filter
        .map(mark_replied::<F::Reply>)
        .recover(recover_traced)
        .unify();
    let mut service = warp::service(filter);
    move || service.call(req)
}

/// A reply of the user's filter, an error one marked as such.
fn mark_replied<R: Reply>(reply: R) -> Response {
    let mut response = reply.into_response();
    if response.status().as_u16() >= 400 {
        response.extensions_mut().insert(Replied);
    }
    response
}

/// How faultline reads warp's responses: warp's own text for a 404 or 405
/// says nothing the code does not, and a 5xx's may name internals: only a
/// handler's text ([`Replied`]) becomes a problem's detail.
struct Warp;

impl HttpRules<Body> for Warp {
    fn replied(response: &Response) -> bool {
        response.extensions().get::<Replied>().is_some()
    }

    fn read_text(status: StatusCode, replied: bool) -> bool {
        replied || !(status.is_server_error() || matches!(status.as_u16(), 404 | 405))
    }
}

/// The recovery [`traced`] puts after the user's filter: handler errors
/// and body errors become responses that carry what they are; the other
/// rejections get warp's own answer, which the service then rewrites.
async fn recover_traced(rejection: Rejection) -> Result<Response, Rejection> {
    if let Some(error) = rejection.find::<Error>() {
        return Ok(error.clone().into_response());
    }
    if let Some(error) = rejection.find::<BodyDeserializeError>() {
        let mut response = Response::new(String::new().into());
        response
            .extensions_mut()
            .insert(FrameworkRejection::body(error));
        return Ok(response);
    }
    Err(rejection)
}

/// Without [`traced`] (plain `warp::serve`, e.g. with tracing switched
/// off), answers a handler's [`Error`] with safe problem details (its code
/// and title, no message); other rejections go on to warp. Add it with
/// `routes.recover(faultline_warp::recover)`.
pub async fn recover(rejection: Rejection) -> Result<Response, Rejection> {
    match rejection.find::<Error>() {
        Some(error) => Ok(error.clone().into_response()),
        None => Err(rejection),
    }
}

/// Declares the route template of the route it is part of, in `{param}`
/// form (`"/users/{id}"`): the request's span is renamed
/// `"{METHOD} {template}"` and gets `http.route`. Put it after the route's
/// path filters. Without [`traced`] it does nothing.
pub fn route(
    template: impl Into<Arc<str>>,
) -> impl Filter<Extract = (), Error = Infallible> + Clone + Send + Sync + 'static {
    let template: Arc<str> = template.into();
    // Behind one pointer: the filter's size moves every route's future.
    let route = Arc::new(adapter::shared_route(&template));
    warp::any()
        .map(move || adapter::note_route(&route))
        .untuple_one()
}

/// The request's trace, as a filter extracting a [`RequestTrace`].
pub fn trace()
-> impl Filter<Extract = (RequestTrace,), Error = Infallible> + Clone + Send + Sync + 'static {
    // The context the service made current around the filter (the
    // request's, traced or excluded).
    warp::any().map(|| RequestTrace(HandlerTrace::new(RequestContext::current())))
}

/// The peer address of the connection, under [`Traced::serve`] (or from a
/// [`ClientAddr`] in the request's extensions) as under `warp::serve`;
/// `None` when the transport has none.
pub fn remote()
-> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone + Send + Sync + 'static
{
    warp::ext::optional::<ClientAddr>()
        .and(warp::addr::remote())
        .map(|ours: Option<ClientAddr>, warps: Option<SocketAddr>| {
            ours.map(|a| a.0).or(adapter::current_peer()).or(warps)
        })
}

/// A connection's executor: spawns its HTTP/2 streams on Tokio with the
/// connection's peer address lent ([`WithPeer`], for [`remote`]).
#[derive(Clone, Copy)]
struct PeerExecutor(SocketAddr);

impl<F: Future<Output: Send> + Send + 'static> hyper::rt::Executor<F> for PeerExecutor {
    fn execute(&self, future: F) {
        tokio::spawn(WithPeer::new(future, self.0));
    }
}

faultline_engine::handler_types! {
    /// A handler error: any error converts into it with `.into()` or
    /// `Error::from`, and it converts into a [`Rejection`] (so `?` works in a
    /// handler returning `Result<_, Rejection>`). It is also a [`Reply`], for a
    /// handler that answers with an error rather than rejecting. The service
    /// records it on the span and answers RFC 9457 problem+json with the
    /// error's code (found on the error or its source chain; 500 and code 5000
    /// without one), the masked detail and the trace id.
    pub struct Error;
    /// The request's trace, extracted by [`trace`]: trace id, span id,
    /// baggage and the OpenTelemetry context (to carry into spawned tasks),
    /// through [`HandlerTrace`]'s methods. Without [`traced`], everything is
    /// `None`.
    pub struct RequestTrace;
}

impl warp::reject::Reject for Error {}

impl Reply for Error {
    fn into_response(self) -> Response {
        // Without the service, a safe body: the code and its title only.
        self.0.fallback_response().map(Into::into)
    }
}

/// A server for a [`Traced`] filter, made by [`Traced::serve`]: HTTP/1 and
/// HTTP/2 on a TCP listener, each connection's peer address recorded as
/// `client.address`.
pub struct Server<F> {
    traced: Traced<F>,
    listener: tokio::net::TcpListener,
    signal: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl<F> std::fmt::Debug for Server<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let graceful = self.signal.is_some();
        f.debug_struct("Server")
            .field("graceful", &graceful)
            .finish_non_exhaustive()
    }
}

impl<F: Routes> Server<F> {
    /// Shuts down gracefully when `signal` resolves: stops accepting,
    /// finishes the requests in flight, then [`run`](Server::run) returns.
    pub fn graceful(mut self, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        self.signal = Some(Box::pin(signal));
        self
    }

    /// Serves until the graceful-shutdown signal (forever without one).
    pub async fn run(self) {
        let (traced, listener) = (self.traced, self.listener);
        let mut signal = self
            .signal
            .unwrap_or_else(|| Box::pin(std::future::pending()));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        adapter::accept_error(error).await;
                        continue;
                    }
                },
                () = &mut signal => break,
            };
            // Each request of the connection answered with the peer's address.
            let traced = traced.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                traced.answer(req, Some(peer))
            });
            let watcher = graceful.watcher();
            let connection = async move {
                let builder = hyper_util::server::conn::auto::Builder::new(PeerExecutor(peer));
                let connection = builder
                    .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service);
                if let Err(error) = watcher.watch(connection).await {
                    tracing::debug!("connection error: {error}");
                }
            };
            tokio::spawn(WithPeer::new(connection, peer));
        }
        drop(listener);
        graceful.shutdown().await;
    }
}

#[cfg(test)]
mod tests;
