//! The server layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};

use faultline_engine::Engine;
use faultline_engine::opentelemetry::KeyValue;
use faultline_engine::opentelemetry::trace::TraceContextExt as _;
use faultline_engine::panic::CatchPanic;
use faultline_engine::request::{RequestSpan, RpcEnd, RpcInfo};
use http::{HeaderMap, Request, Response, StatusCode};
use tonic::Code;
use tonic::body::Body as TonicBody;
use tonic::transport::server::TcpConnectInfo;
use tower::{Layer, Service};

use crate::body::{CountedBody, StreamEnd, TracedBody};
use crate::status::{
    Answer, carried_error, code_name, http_for_code, is_server_error, is_unknown_method,
    write_error,
};

/// The header of a status's details.
const DETAILS: &str = "grpc-status-details-bin";
/// Messages the server received in a call (requests).
const RECEIVED: &str = "faultline.rpc.messages.received";
/// Messages the server sent in a call (responses).
const SENT: &str = "faultline.rpc.messages.sent";

/// The server layer: `tonic::transport::Server::builder().layer(FaultlineLayer::new(engine))`.
#[derive(Debug, Clone)]
pub struct FaultlineLayer {
    engine: Engine,
}

impl FaultlineLayer {
    /// A layer tracing with `engine`.
    pub fn new(engine: Engine) -> Self {
        FaultlineLayer { engine }
    }
}

impl<S> Layer<S> for FaultlineLayer {
    type Service = FaultlineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FaultlineService {
            inner,
            engine: self.engine.clone(),
        }
    }
}

/// The service [`FaultlineLayer`] wraps around a tonic server's routes.
#[derive(Debug, Clone)]
pub struct FaultlineService<S> {
    inner: S,
    engine: Engine,
}

impl<S, B> Service<Request<TonicBody>> for FaultlineService<S>
where
    S: Service<Request<TonicBody>, Response = Response<B>>,
    B: http_body::Body + Default,
{
    type Response = Response<TracedBody<B, ServerEnd>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<TonicBody>) -> Self::Future {
        let uri = req.uri();
        let connection = req.extensions().get::<TcpConnectInfo>();
        let peer = connection.and_then(TcpConnectInfo::remote_addr);
        // The `:authority` the client called; without one, the address it
        // reached.
        let local_authority = match uri.authority() {
            Some(_) => None,
            None => connection
                .and_then(TcpConnectInfo::local_addr)
                .map(|a| a.to_string()),
        };
        let span = self.engine.start_rpc(&RpcInfo {
            system: "grpc",
            method: uri.path().trim_start_matches('/'),
            headers: req.headers(),
            authority: uri
                .authority()
                .map(|a| a.as_str())
                .or(local_authority.as_deref()),
            peer,
        });
        let received = Arc::new(AtomicU64::new(0));
        let req = req.map(|body| TonicBody::new(CountedBody::new(body, received.clone())));
        let handler = span.instrument(self.inner.call(req));
        ResponseFuture {
            handler,
            call: Some(Call { span, received }),
        }
    }
}

/// One call in flight: its span and how many messages it received.
struct Call {
    span: RequestSpan,
    received: Arc<AtomicU64>,
}

pin_project_lite::pin_project! {
    /// The future of [`FaultlineService`]: the handler's (inside the span's
    /// context, panics caught), then the answer.
    pub struct ResponseFuture<F> {
        #[pin]
        handler: CatchPanic<F>,
        call: Option<Call>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body + Default,
{
    type Output = Result<Response<TracedBody<B, ServerEnd>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.handler.poll(cx));
        let Some(mut call) = this.call.take() else {
            // Polled again after it answered.
            return Poll::Ready(Ok(Response::new(TracedBody::new(B::default(), None))));
        };
        let mut response = match result {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                // The service failed without an answer (the connection ends).
                call.finish(Code::Unknown, None, 0);
                return Poll::Ready(Err(error));
            }
            Err(panic) => {
                call.span.record_panic(&panic);
                let mut response = Response::new(B::default());
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/grpc"),
                );
                let (code, http) =
                    write_error(&mut call.span, Answer::Panic, response.headers_mut());
                call.finish(code, Some(http), 0);
                return Poll::Ready(Ok(response.map(|b| TracedBody::new(b, None))));
            }
        };
        // A trailers-only answer (an error, as tonic sends them) carries its
        // status in the headers: the call ends here.
        let Some(code) = grpc_code(response.headers()) else {
            return Poll::Ready(Ok(
                response.map(|b| TracedBody::new(b, Some(ServerEnd(call))))
            ));
        };
        let mut http = None;
        if code != Code::Ok {
            if is_unknown_method(response.extensions(), code) {
                call.span.set_rpc_method_unknown();
            }
            let carried = carried_error(response.extensions());
            let message = status_message(response.headers());
            let answer = match &carried {
                Some(error) => Some(Answer::Error(error)),
                // A status with details of the handler's own is kept.
                None if response.headers().contains_key(DETAILS) => None,
                None => Some(Answer::Status(code, &message)),
            };
            if let Some(answer) = answer {
                let (_, status) = write_error(&mut call.span, answer, response.headers_mut());
                http = Some(status);
            }
        }
        let code = grpc_code(response.headers()).unwrap_or(code);
        call.finish(code, http, 0);
        Poll::Ready(Ok(response.map(|b| TracedBody::new(b, None))))
    }
}

impl Call {
    /// Ends the span: message counts, then the status (`http`: the HTTP
    /// status the answer stands for, when an error set one).
    fn finish(self, code: Code, http: Option<StatusCode>, sent: u64) {
        let span = self.span.context().span();
        let received = self.received.load(Ordering::Relaxed);
        span.set_attribute(KeyValue::new(RECEIVED, saturating_i64(received)));
        span.set_attribute(KeyValue::new(SENT, saturating_i64(sent)));
        self.span.finish_rpc(&RpcEnd {
            status_code: code_name(code),
            server_error: is_server_error(code),
            http_status: http.unwrap_or_else(|| http_for_code(code)),
        });
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The `grpc-status` of a header map (trailers, or a trailers-only answer's
/// headers).
pub(crate) fn grpc_code(headers: &HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|v| Code::from_bytes(v.as_bytes()))
}

/// The (decoded) `grpc-message` of a header map.
fn status_message(headers: &HeaderMap) -> String {
    tonic::Status::from_header_map(headers)
        .map(|s| s.message().to_owned())
        .unwrap_or_default()
}

/// The end of a streamed answer: its trailers carry the status.
pub struct ServerEnd(Call);

impl std::fmt::Debug for ServerEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ServerEnd").field(&self.0.span).finish()
    }
}

impl StreamEnd for ServerEnd {
    fn end(self, trailers: Option<&mut HeaderMap>, messages: u64) {
        let mut call = self.0;
        let Some(trailers) = trailers else {
            // No status: the client sees the call fail.
            call.finish(Code::Unknown, None, messages);
            return;
        };
        let code = grpc_code(trailers).unwrap_or(Code::Unknown);
        let mut http = None;
        if code != Code::Ok && !trailers.contains_key(DETAILS) {
            // An error in the stream: tonic has kept only its code and
            // message, which the details now carry (masked).
            let message = status_message(trailers);
            let (_, status) = write_error(&mut call.span, Answer::Status(code, &message), trailers);
            http = Some(status);
        }
        call.finish(code, http, messages);
    }
}
