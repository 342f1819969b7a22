//! The server layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};

use faultline_engine::opentelemetry::Context;
use faultline_engine::opentelemetry::trace::TraceContextExt as _;
use faultline_engine::panic::{CatchPanic, CaughtPanic};
use faultline_engine::request::{HandlerError, RequestSpan, RpcEnd, RpcInfo};
use http::{HeaderMap, Request, Response, StatusCode};
use tonic::Code;
use tonic::body::Body as TonicBody;
use tonic::transport::server::TcpConnectInfo;
use tower::Service;

use crate::body::{StreamEnd, TracedBody, counted, record_messages};
use crate::status::{
    Answer, carried_error, code_name, http_for_code, is_server_error, is_unknown_method,
    status_answer, write_error,
};

faultline_engine::tower_layer! {
    /// The server layer: `tonic::transport::Server::builder().layer(FaultlineLayer::new(engine))`.
    pub struct FaultlineLayer;
    /// The service [`FaultlineLayer`] wraps around a tonic server's routes.
    pub struct FaultlineService;
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
        let reached = (connection.and_then(TcpConnectInfo::local_addr))
            .filter(|_| uri.authority().is_none())
            .map(|a| a.to_string());
        let span = self.engine.start_rpc(
            &RpcInfo::new("grpc", uri.path().trim_start_matches('/'), req.headers())
                .with_authority(uri.authority().map(|a| a.as_str()).or(reached.as_deref()))
                .with_peer(peer),
        );
        let (req, received) = counted(req);
        let handler = span.instrument(self.inner.call(req));
        ResponseFuture {
            handler,
            call: Some(Call { span, received }),
        }
    }
}

/// One call in flight: its span and how many messages it received.
#[derive(Debug)]
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
                let mut response = Response::new(B::default());
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/grpc"),
                );
                call.panicked(&panic, response.headers_mut(), 0);
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
        let carried = carried_error(response.extensions());
        if is_unknown_method(response.extensions(), code) {
            call.span.set_rpc_method_unknown();
        }
        call.end(carried.as_ref(), response.headers_mut(), 0);
        Poll::Ready(Ok(response.map(|b| TracedBody::new(b, None))))
    }
}

impl Call {
    /// Ends the call with the status in `headers` (trailers, or a
    /// trailers-only answer's headers), an error status rewritten as
    /// faultline's answer (for `carried`, when the handler's error came
    /// along); `sent` messages.
    fn end(mut self, carried: Option<&HandlerError>, headers: &mut HeaderMap, sent: u64) {
        let code = grpc_code(headers).unwrap_or(Code::Unknown);
        let answer = match carried {
            _ if code == Code::Ok => None,
            Some(error) => Some(Answer::Error(error)),
            None => status_answer(code, headers),
        };
        let (code, http) = match answer {
            Some(answer) => {
                let (code, http) = write_error(&mut self.span, answer, headers);
                (code, Some(http))
            }
            None => (code, None),
        };
        self.finish(code, http, sent);
    }

    /// Ends the call after a panic: `INTERNAL`, code 5000, written into
    /// `headers`.
    fn panicked(mut self, panic: &CaughtPanic, headers: &mut HeaderMap, sent: u64) {
        self.span.record_panic(panic);
        let (code, http) = write_error(&mut self.span, Answer::Panic, headers);
        self.finish(code, Some(http), sent);
    }

    /// Ends the span: message counts, then the status (`http`: the HTTP
    /// status the answer stands for, when an error set one).
    fn finish(self, code: Code, http: Option<StatusCode>, sent: u64) {
        record_messages(
            &self.span.context().span(),
            self.received.load(Ordering::Relaxed),
            sent,
        );
        self.span.finish_rpc(&RpcEnd::new(
            code_name(code),
            is_server_error(code),
            http.unwrap_or_else(|| http_for_code(code)),
        ));
    }
}

/// The `grpc-status` of a header map (trailers, or a trailers-only answer's
/// headers).
pub(crate) fn grpc_code(headers: &HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|v| Code::from_bytes(v.as_bytes()))
}

/// The end of a streamed answer: its trailers carry the status.
#[derive(Debug)]
pub struct ServerEnd(Call);

impl StreamEnd for ServerEnd {
    fn end(self, trailers: Option<&mut HeaderMap>, messages: u64) {
        match trailers {
            Some(trailers) => self.0.end(None, trailers, messages),
            // No status: the client sees the call fail.
            None => self.0.finish(Code::Unknown, None, messages),
        }
    }

    fn guard(&self) -> Option<Context> {
        Some(self.0.span.context().clone())
    }

    fn panicked(self, panic: &CaughtPanic, messages: u64) -> HeaderMap {
        let mut trailers = HeaderMap::new();
        self.0.panicked(panic, &mut trailers, messages);
        trailers
    }
}
