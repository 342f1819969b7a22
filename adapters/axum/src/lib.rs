//! faultline's axum adapter: one tower [`Layer`](tower::Layer) traces every request.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use faultline_axum::{Error, FaultlineLayer, RequestTrace};
//! use faultline_engine::Engine;
//! use faultline_engine::config::{ExporterKind, TracingConfig};
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
//! // The engine alone knows the console exporter; in an application,
//! // `faultline::setup::engine_builder(config)` registers the exporters
//! // compiled into faultline (`otlp`, the default, `jaeger`, ...) by name.
//! let config = TracingConfig::builder()
//!     .service_name("users")
//!     .exporters([ExporterKind::CONSOLE])
//!     .build()?;
//! let engine = Engine::builder(config).build()?;
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
//! The span ends when the response body ends (a streamed body is timed to
//! its last byte), and requests on the configured excluded routes are not
//! traced: see the engine's adapter core (`faultline_engine::request::adapter`),
//! which every faultline HTTP adapter shares.
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
#![warn(unreachable_pub)]
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath};
use axum::response::{IntoResponse, Response};
use faultline_engine::panic::CatchPanic;
use faultline_engine::request::adapter::{self, Exchange, TracedBody};
use faultline_engine::request::{HandlerTrace, RequestContext, RequestInfo};
use http::Request;
use http::request::Parts;
use tower::Service;

/// The axum crate this adapter is built on, for code that names its types.
pub use axum;
pub use faultline_engine as engine;

faultline_engine::tower_layer! {
    /// The tower layer: add it to a `Router` with `.layer(FaultlineLayer::new(engine))`.
    pub struct FaultlineLayer;
    /// The service [`FaultlineLayer`] wraps around each route.
    pub struct FaultlineService;
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
        let (method, uri, headers) = (req.method(), req.uri(), req.headers());
        if let Some(metrics) = adapter::scrape(&self.engine, method, uri.path(), headers) {
            return ResponseFuture {
                state: State::Ready {
                    response: Some(metrics.map(Body::from)),
                },
            };
        }
        // `MatchedPath` is shared: cloning it copies no text.
        let route = req.extensions().get::<MatchedPath>().cloned();
        let client = req.extensions().get::<ConnectInfo<SocketAddr>>();
        let info = RequestInfo::new(method, uri, req.version(), headers)
            .with_route(route.as_ref().map(MatchedPath::as_str))
            .with_client_address(client.map(|c| c.0.ip()));
        let exchange = Exchange::start(&self.engine, &info, uri.clone());
        // Handlers find the request's context through `RequestTrace`, which
        // reads it from the span's future (`RequestContext::current`): no
        // extension to insert (a box and, past three extensions, a bigger
        // table on every request).
        let handler = exchange.instrument(self.inner.call(req));
        ResponseFuture {
            state: State::Handler {
                handler,
                exchange: Some(exchange),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`FaultlineService`]: the handler's, then the span's
    /// hand-over to the body. Not boxed: only a framework error response,
    /// whose body is read to become a problem's detail, takes a boxed step.
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
            exchange: Option<Exchange>,
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
        let rewrite = match self.as_mut().project().state.project() {
            StateProj::Ready { response } => {
                return Poll::Ready(Ok(response.take().unwrap_or_default()));
            }
            StateProj::Rewriting { future } => return future.as_mut().poll(cx).map(Ok),
            StateProj::Handler { handler, exchange } => {
                let handled = std::task::ready!(handler.poll(cx)).map(|Ok(r)| r);
                let Some(mut exchange) = exchange.take() else {
                    // Polled again after it answered.
                    return Poll::Ready(Ok(Response::default()));
                };
                let response = exchange.answer(handled);
                if !Exchange::rewrites(&response) {
                    return Poll::Ready(Ok(into_axum(exchange.finish(response))));
                }
                // axum's own error response: its body becomes the detail.
                Box::pin(async move {
                    let response = exchange.rewrite(response, true).await;
                    into_axum(exchange.finish(response))
                })
            }
        };
        self.as_mut()
            .project()
            .state
            .set(State::Rewriting { future: rewrite });
        self.poll(cx)
    }
}

fn into_axum(response: http::Response<TracedBody<Body>>) -> Response {
    response.map(|body| body.into_framework().unwrap_or_else(Body::new))
}

faultline_engine::handler_types! {
    /// A handler error: any error converts into it with `?` or `.into()`. The
    /// layer records it on the span and answers RFC 9457 problem+json with the
    /// error's code (found on the error or its source chain; 500 and code 5000
    /// without one), the masked detail and the trace id.
    pub struct Error;
    /// The request's trace, as an extractor: trace id, span id, baggage and the
    /// OpenTelemetry context (to carry into spawned tasks), through
    /// [`HandlerTrace`]'s methods. Without the layer, everything is `None`. It
    /// is the request's context as the layer's future holds it
    /// ([`RequestContext::current`]): extract it in the handler (or a
    /// middleware inside the layer), not in a task the handler spawns.
    pub struct RequestTrace;
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        // Without the layer, a safe body: the code and its title only.
        self.0.fallback_response().map(Body::from)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestTrace {
    type Rejection = Infallible;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestTrace(HandlerTrace::new(RequestContext::current())))
    }
}

#[cfg(test)]
mod tests;
