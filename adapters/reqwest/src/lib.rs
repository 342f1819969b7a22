//! faultline's outbound integration: a `reqwest-middleware` middleware that
//! starts a CLIENT span for every outgoing request, child of the current
//! context, and injects `traceparent`, `tracestate` and `baggage`.
//!
//! ```no_run
//! # async fn run(engine: faultline_engine::Engine) -> Result<(), reqwest_middleware::Error> {
//! let client = faultline_reqwest::client(&engine, reqwest::Client::new());
//! let response = client.get("http://inventory.internal/items/7").send().await?;
//! # Ok(()) }
//! ```
//!
//! Any other HTTP client can propagate with
//! [`Engine::inject_current`](faultline_engine::Engine::inject_current) on an
//! `http::HeaderMap`.
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![forbid(unsafe_code)]

use faultline_engine::Engine;
use faultline_engine::opentelemetry::KeyValue;
use faultline_engine::opentelemetry::trace::{FutureExt as _, Status, TraceContextExt};
use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next, Result};

pub use faultline_engine as engine;
/// The reqwest crate this adapter is built on, for code that names its types.
pub use reqwest;
pub use reqwest_middleware;

/// The middleware. Add it with `reqwest_middleware::ClientBuilder::with`, or
/// build a client with [`client`].
#[derive(Debug, Clone)]
pub struct TracingMiddleware {
    engine: Engine,
}

impl TracingMiddleware {
    /// A middleware tracing with `engine`.
    pub fn new(engine: Engine) -> Self {
        TracingMiddleware { engine }
    }
}

/// `client` with the tracing middleware.
pub fn client(engine: &Engine, client: reqwest::Client) -> ClientWithMiddleware {
    ClientBuilder::new(client)
        .with(TracingMiddleware::new(engine.clone()))
        .build()
}

#[async_trait::async_trait]
impl Middleware for TracingMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let method =
            faultline_engine::request::adapter::method_name(req.method()).unwrap_or("_OTHER");
        let url = req.url();
        let mut attributes = vec![
            KeyValue::new("http.request.method", method),
            KeyValue::new("url.full", url.as_str().to_owned()),
        ];
        if method == "_OTHER" {
            attributes.push(KeyValue::new(
                "http.request.method_original",
                req.method().as_str().to_owned(),
            ));
        }
        if let Some(host) = url.host_str() {
            attributes.push(KeyValue::new("server.address", host.to_owned()));
        }
        if let Some(port) = url.port_or_known_default() {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        let cx = self
            .engine
            .start_client_span(method, attributes, req.headers_mut());

        let result = next.run(req, extensions).with_context(cx.clone()).await;
        let span = cx.span();
        match &result {
            Ok(response) => {
                let status = response.status();
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status.as_u16()),
                ));
                if status.is_client_error() || status.is_server_error() {
                    span.set_attribute(KeyValue::new("error.type", status.as_u16().to_string()));
                    span.set_status(Status::error(status.canonical_reason().unwrap_or("error")));
                }
            }
            Err(error) => {
                let kind = match error {
                    reqwest_middleware::Error::Reqwest(e) if e.is_timeout() => "timeout",
                    reqwest_middleware::Error::Reqwest(e) if e.is_connect() => "connect",
                    reqwest_middleware::Error::Reqwest(_) => "request",
                    reqwest_middleware::Error::Middleware(_) => "middleware",
                };
                span.set_attribute(KeyValue::new("error.type", kind));
                span.set_status(Status::error(error.to_string()));
            }
        }
        span.end();
        result
    }
}
