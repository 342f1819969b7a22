//! The client layer.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};

use faultline_engine::Engine;
use faultline_engine::opentelemetry::trace::FutureExt as _;
use faultline_engine::opentelemetry::trace::{
    Status as SpanStatus, TraceContextExt as _, WithContext,
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
    /// `server.address`, `server.port` of [`with_server`](Self::with_server).
    server: Arc<[KeyValue]>,
}

impl ClientLayer {
    /// A layer tracing with `engine`.
    pub fn new(engine: Engine) -> Self {
        ClientLayer {
            engine,
            server: Arc::default(),
        }
    }

    /// The server the calls go to (`server.address`, `server.port`), for a
    /// channel whose requests carry the path only (a tonic `Channel` adds
    /// the origin below this layer).
    pub fn with_server(mut self, endpoint: &Uri) -> Self {
        self.server = server_attributes(endpoint).into();
        self
    }
}

/// `server.address` and `server.port` of a URI with a host.
fn server_attributes(uri: &Uri) -> Vec<KeyValue> {
    let Some(host) = uri.host() else {
        return Vec::new();
    };
    let port = uri.port_u16().map(i64::from);
    std::iter::once(KeyValue::new(semconv::SERVER_ADDRESS, host.to_owned()))
        .chain(port.map(|p| KeyValue::new(semconv::SERVER_PORT, p)))
        .collect()
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
        let method = req.uri().path().trim_start_matches('/').to_owned();
        let mut attributes = server_attributes(req.uri());
        if attributes.is_empty() {
            attributes.extend_from_slice(&self.layer.server);
        }
        attributes.push(KeyValue::new(semconv::RPC_SYSTEM_NAME, "grpc"));
        attributes.push(KeyValue::new(semconv::RPC_METHOD, method.clone()));
        let cx = self
            .layer
            .engine
            .start_client_span(method, attributes, req.headers_mut());
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
                end.close(0, Some(("transport", error.to_string().into())));
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

impl ClientEnd {
    /// Ends the span: the message counts, and the `error.type` and status
    /// message of a failed call.
    fn close(self, received: u64, error: Option<(&'static str, Cow<'static, str>)>) {
        let span = self.cx.span();
        record_messages(&span, received, self.sent.load(Ordering::Relaxed));
        if let Some((kind, message)) = error {
            span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, kind));
            span.set_status(SpanStatus::error(message));
        }
        span.end();
    }
}

impl StreamEnd for ClientEnd {
    fn end(self, trailers: Option<&mut HeaderMap>, received: u64) {
        let code = trailers.and_then(|t| grpc_code(t)).unwrap_or(Code::Unknown);
        let name = code_name(code);
        let span = self.cx.span();
        span.set_attribute(KeyValue::new(semconv::RPC_RESPONSE_STATUS_CODE, name));
        // Every status but OK is an error on a client span.
        self.close(received, (code != Code::Ok).then_some((name, name.into())));
    }
}
