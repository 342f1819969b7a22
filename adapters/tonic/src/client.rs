//! The client layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};

use faultline_engine::Engine;
use faultline_engine::opentelemetry::trace::FutureExt as _;
use faultline_engine::opentelemetry::trace::{
    SpanKind, Status as SpanStatus, TraceContextExt as _, Tracer as _, WithContext,
};
use faultline_engine::opentelemetry::{Context, KeyValue};
use http::{HeaderMap, Request, Response, Uri};
use opentelemetry_semantic_conventions::attribute as semconv;
use tonic::Code;
use tonic::body::Body as TonicBody;
use tower::{Layer, Service};

use crate::body::{StreamEnd, TracedBody, counted, record_messages};
use crate::server::grpc_code;
use crate::status::code_name;

/// The client layer: CLIENT spans for outgoing calls, children of the
/// current context, with the trace context injected into the metadata.
///
/// ```no_run
/// # async fn run(engine: faultline_engine::Engine) -> Result<(), Box<dyn std::error::Error>> {
/// let endpoint: http::Uri = "http://inventory.internal:50051".parse()?;
/// let channel = tonic::transport::Endpoint::from(endpoint.clone()).connect().await?;
/// let traced = tower::ServiceBuilder::new()
///     .layer(faultline_tonic::ClientLayer::new(engine).with_server(&endpoint))
///     .service(channel);
/// // Any generated client takes it: `GreeterClient::new(traced)`.
/// # let _ = traced; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientLayer {
    engine: Engine,
    server: Option<Arc<(String, Option<u16>)>>,
}

impl ClientLayer {
    /// A layer tracing with `engine`.
    pub fn new(engine: Engine) -> Self {
        ClientLayer {
            engine,
            server: None,
        }
    }

    /// The server the calls go to (`server.address`, `server.port`), for a
    /// channel whose requests carry the path only (a tonic `Channel` adds
    /// the origin below this layer).
    pub fn with_server(mut self, endpoint: &Uri) -> Self {
        self.server = endpoint
            .host()
            .map(|h| Arc::new((h.to_owned(), endpoint.port_u16())));
        self
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = ClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`ClientLayer`] wraps around a channel.
#[derive(Debug, Clone)]
pub struct ClientService<S> {
    inner: S,
    layer: ClientLayer,
}

impl<S, ResB> Service<Request<TonicBody>> for ClientService<S>
where
    S: Service<Request<TonicBody>, Response = Response<ResB>>,
    S::Error: std::fmt::Display,
{
    type Response = Response<TracedBody<ResB, ClientEnd>>;
    type Error = S::Error;
    type Future = ClientFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<TonicBody>) -> Self::Future {
        let (mut req, sent) = counted(req);
        let parent = Context::current();
        let method = req.uri().path().trim_start_matches('/').to_owned();
        let mut attributes = vec![
            KeyValue::new(semconv::RPC_SYSTEM_NAME, "grpc"),
            KeyValue::new(semconv::RPC_METHOD, method.clone()),
        ];
        let server = match req.uri().host() {
            Some(host) => Some((host.to_owned(), req.uri().port_u16())),
            None => self.layer.server.as_deref().cloned(),
        };
        if let Some((host, port)) = server {
            attributes.push(KeyValue::new(semconv::SERVER_ADDRESS, host));
            if let Some(port) = port {
                attributes.push(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
            }
        }
        let tracer = self.layer.engine.tracer();
        let span = tracer
            .span_builder(method)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        let cx = parent.with_span(span);
        self.layer.engine.inject(&cx, req.headers_mut());
        ClientFuture {
            inner: self.inner.call(req).with_context(cx.clone()),
            end: Some(ClientEnd { cx, sent }),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`ClientService`].
    pub struct ClientFuture<F> {
        #[pin]
        inner: WithContext<F>,
        end: Option<ClientEnd>,
    }
}

impl<F, B, E> Future for ClientFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: std::fmt::Display,
{
    type Output = Result<Response<TracedBody<B, ClientEnd>>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(task));
        let Some(end) = this.end.take() else {
            return Poll::Ready(result.map(|r| r.map(|b| TracedBody::new(b, None))));
        };
        Poll::Ready(match result {
            Ok(mut response) => {
                if grpc_code(response.headers()).is_some() {
                    // A trailers-only answer: its status is in the headers.
                    end.end(Some(response.headers_mut()), 0);
                    Ok(response.map(|b| TracedBody::new(b, None)))
                } else {
                    Ok(response.map(|b| TracedBody::new(b, Some(end))))
                }
            }
            Err(error) => {
                let span = end.cx.span();
                record_messages(&span, 0, end.sent.load(Ordering::Relaxed));
                span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, "transport"));
                span.set_status(SpanStatus::error(error.to_string()));
                span.end();
                Err(error)
            }
        })
    }
}

/// The end of a call as the client sees it: the callee's status, and the
/// messages sent and received (`faultline.rpc.messages.sent`/`received`).
#[derive(Debug)]
pub struct ClientEnd {
    cx: Context,
    sent: Arc<AtomicU64>,
}

impl StreamEnd for ClientEnd {
    fn end(self, trailers: Option<&mut HeaderMap>, received: u64) {
        let code = trailers.and_then(|t| grpc_code(t)).unwrap_or(Code::Unknown);
        let span = self.cx.span();
        record_messages(&span, received, self.sent.load(Ordering::Relaxed));
        let name = code_name(code);
        span.set_attribute(KeyValue::new(semconv::RPC_RESPONSE_STATUS_CODE, name));
        if code != Code::Ok {
            // Every status but OK is an error on a client span.
            span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, name));
            span.set_status(SpanStatus::error(name));
        }
        span.end();
    }
}
