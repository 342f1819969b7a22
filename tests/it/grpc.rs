//! The tonic adapter: server spans by the RPC conventions, error details
//! (`google.rpc.Status` + `ErrorInfo`), panics, streaming, trusted peers,
//! error keeping and correlators, in process with an in-memory exporter;
//! and the gRPC reference service (`examples/grpc_service.rs`) against an
//! independent client: Python grpcio traced by the OpenTelemetry Python
//! SDK's gRPC instrumentation, the error details decoded by grpcio-status.

#[path = "../../examples/grpc/helloworld.rs"]
#[allow(dead_code)]
mod helloworld;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline::Engine;
use faultline::config::{PeerNet, TracingConfig};
use faultline::correlate::{Correlator, RequestOutcome, RpcOutcome};
use faultline::error::{AppError, ErrorCode};
use faultline::export::InMemoryExporter;
use faultline::tonic::tonic_types::{self, StatusExt as _};
use faultline::tonic::{ClientLayer, FaultlineLayer};
use helloworld::{Greeter, GreeterClient, GreeterServer, HelloReply, HelloRequest};
use opentelemetry::trace::{SpanKind, Status as SpanStatus};
use opentelemetry_sdk::trace::SpanData;
use prost::Message as _;
use serde_json::{Value, json};
use tonic::codegen::{Body, BoxFuture, BoxStream, StdError, http};
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Status};
use tower::Layer as _;

use crate::common::{memory_engine, quiet_config};
use crate::peers::run_python;
use crate::service::Service;

const USER_NOT_FOUND: ErrorCode =
    ErrorCode::new(1001, "USER_NOT_FOUND", http::StatusCode::NOT_FOUND);
const METHOD: &str = "helloworld.Greeter/SayHello";

/// The greeter of these tests: `missing` fails through faultline's error
/// model, `denied` with a status of its own, `panic` panics.
struct TestGreeter;

#[tonic::async_trait]
impl Greeter for TestGreeter {
    async fn say_hello(
        &self,
        request: tonic::Request<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, Status> {
        let name = request.into_inner().name;
        match name.as_str() {
            "missing" => Err(faultline::tonic::status(AppError::new(
                USER_NOT_FOUND,
                "no user for dave@example.com",
            ))),
            "denied" => Err(Status::permission_denied("not for bob@example.com")),
            "panic" => panic!("greeter crashed for alice@example.com"),
            _ => Ok(tonic::Response::new(HelloReply {
                message: format!("Hello {name}"),
            })),
        }
    }
}

/// `test.Counter/Count`: a server-streaming method answering `name` (a
/// number) messages; after the second it waits for `gate`. The name
/// `fail` sends one message, then fails the stream with `DATA_LOSS`;
/// `missing`, with faultline's `USER_NOT_FOUND`; `crash` sends two
/// messages, waits for `gate`, then panics while the stream is polled.
#[derive(Clone)]
struct Counter {
    gate: Arc<tokio::sync::Semaphore>,
}

impl tonic::server::NamedService for Counter {
    const NAME: &'static str = "test.Counter";
}

impl tonic::server::ServerStreamingService<HelloRequest> for Counter {
    type Response = HelloReply;
    type ResponseStream = BoxStream<HelloReply>;
    type Future = BoxFuture<tonic::Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: tonic::Request<HelloRequest>) -> Self::Future {
        let gate = self.gate.clone();
        let name = request.into_inner().name;
        Box::pin(async move {
            let reply = |n: u32| HelloReply {
                message: n.to_string(),
            };
            let crash = name == "crash";
            let items: Vec<Result<HelloReply, Status>> = if name == "fail" {
                vec![
                    Ok(reply(1)),
                    Err(Status::data_loss("lost the rest at carol@example.com")),
                ]
            } else if name == "missing" {
                vec![
                    Ok(reply(1)),
                    Err(faultline::tonic::status(AppError::new(
                        USER_NOT_FOUND,
                        "no user for dave@example.com",
                    ))),
                ]
            } else if crash {
                vec![Ok(reply(1)), Ok(reply(2))]
            } else {
                let n: u32 = name.parse().map_err(|_| Status::invalid_argument("n"))?;
                (1..=n).map(|i| Ok(reply(i))).collect()
            };
            let stream = futures_util::stream::unfold(
                (items.into_iter(), 0usize),
                move |(mut items, sent)| {
                    let gate = gate.clone();
                    async move {
                        if sent == 2 {
                            let _ = gate.acquire().await.map(|p| p.forget());
                        }
                        let item = items.next();
                        if item.is_none() && crash {
                            panic!("counter crashed for erin@example.com");
                        }
                        item.map(|item| (item, (items, sent + 1)))
                    }
                },
            );
            Ok(tonic::Response::new(
                Box::pin(stream) as BoxStream<HelloReply>
            ))
        })
    }
}

impl<B> tonic::codegen::Service<http::Request<B>> for Counter
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.server_streaming(method, request).await)
        })
    }
}

/// A traced tonic server of [`TestGreeter`] and [`Counter`] on 127.0.0.1;
/// it stops when the returned sender is dropped.
async fn serve(engine: &Engine, gate: Arc<tokio::sync::Semaphore>) -> (SocketAddr, StopServer) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = Server::builder()
        .layer(FaultlineLayer::new(engine.clone()))
        .add_service(GreeterServer::new(TestGreeter))
        .add_service(Counter { gate })
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            async {
                let _ = stopped.await;
            },
        );
    tokio::spawn(server);
    (addr, StopServer(Some(stop)))
}

struct StopServer(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for StopServer {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            let _ = stop.send(());
        }
    }
}

fn endpoint(addr: SocketAddr) -> http::Uri {
    format!("http://{addr}").parse().unwrap()
}

async fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from(endpoint(addr)).connect().await.unwrap()
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

fn server_spans(spans: &[SpanData]) -> Vec<&SpanData> {
    spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Server)
        .collect()
}

/// The error details of `status`: the `google.rpc.Status` (whose code and
/// message must equal the call's) and its `ErrorInfo`.
fn details(status: &Status) -> tonic_types::ErrorInfo {
    let rpc = tonic_types::pb::Status::decode(status.details()).expect("a google.rpc.Status");
    assert_eq!(rpc.code, status.code() as i32, "{status:?}");
    assert_eq!(rpc.message, status.message(), "{status:?}");
    status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_server_spans_by_the_rpc_conventions_and_errors_carry_their_details() {
    let spans = InMemoryExporter::default();
    let engine = memory_engine(quiet_config().build().unwrap(), &spans);
    let (addr, _server) = serve(&engine, Arc::new(tokio::sync::Semaphore::new(0))).await;
    let traced = ClientLayer::new(engine.clone())
        .with_server(&endpoint(addr))
        .layer(channel(addr).await);
    let mut client = GreeterClient::new(traced);
    let say = |name: &str| HelloRequest {
        name: name.to_owned(),
    };

    let ok = client.say_hello(say("world")).await.unwrap();
    assert_eq!(ok.into_inner().message, "Hello world");
    let missing = client.say_hello(say("missing")).await.unwrap_err();
    let denied = client.say_hello(say("denied")).await.unwrap_err();
    let panicked = client.say_hello(say("panic")).await.unwrap_err();

    engine.force_flush();
    let exported = spans.wait_for(8, Duration::from_secs(10));
    assert_eq!(exported.len(), 8, "{exported:#?}");
    let servers = server_spans(&exported);
    let client_spans: Vec<&SpanData> = exported
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect();
    assert_eq!((servers.len(), client_spans.len()), (4, 4));
    // Each server span is the child of its call's CLIENT span (the context
    // went through the metadata), in the same trace.
    for server in &servers {
        let parent = client_spans
            .iter()
            .find(|c| c.span_context.span_id() == server.parent_span_id)
            .unwrap_or_else(|| panic!("no client span is the parent of {server:#?}"));
        assert_eq!(
            parent.span_context.trace_id(),
            server.span_context.trace_id()
        );
        assert_eq!(server.name, METHOD);
        assert_eq!(attr(server, "rpc.system.name").as_deref(), Some("grpc"));
        assert_eq!(attr(server, "rpc.method").as_deref(), Some(METHOD));
        assert_eq!(attr(server, "server.address").as_deref(), Some("127.0.0.1"));
        assert_eq!(attr(server, "server.port"), Some(addr.port().to_string()));
        assert_eq!(
            attr(server, "network.peer.address").as_deref(),
            Some("127.0.0.1")
        );
        assert!(attr(server, "network.peer.port").is_some());
        assert_eq!(attr(parent, "rpc.method").as_deref(), Some(METHOD));
        assert_eq!(attr(parent, "server.port"), Some(addr.port().to_string()));
        // The client recorded the callee's status.
        assert_eq!(
            attr(parent, "rpc.response.status_code"),
            attr(server, "rpc.response.status_code")
        );
    }
    let by_status = |status: &str| {
        servers
            .iter()
            .find(|s| attr(s, "rpc.response.status_code").as_deref() == Some(status))
            .copied()
            .unwrap_or_else(|| panic!("no server span with status {status}: {servers:#?}"))
    };
    let trace_of = |span: &SpanData| span.span_context.trace_id().to_string();

    // OK: no error anywhere.
    let ok_span = by_status("OK");
    assert_eq!(ok_span.status, SpanStatus::Unset);
    assert_eq!(
        attr(ok_span, "faultline.rpc.messages.received").as_deref(),
        Some("1")
    );
    assert_eq!(
        attr(ok_span, "faultline.rpc.messages.sent").as_deref(),
        Some("1")
    );
    // The client counted its messages too: one each way; an error answer
    // (trailers only) has none.
    for client_span in &client_spans {
        let ok = attr(client_span, "rpc.response.status_code").as_deref() == Some("OK");
        assert_eq!(
            attr(client_span, "faultline.rpc.messages.sent").as_deref(),
            Some("1")
        );
        assert_eq!(
            attr(client_span, "faultline.rpc.messages.received").as_deref(),
            Some(if ok { "1" } else { "0" })
        );
    }

    // NOT_FOUND through faultline's error model: the message masked, the
    // details with the error's name, code and trace id; not an error on a
    // server span by the conventions' gRPC table, but on the client span.
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(missing.message(), "no user for d***@example.com");
    let info = details(&missing);
    let not_found = by_status("NOT_FOUND");
    assert_eq!(info.reason, "USER_NOT_FOUND");
    assert_eq!(info.domain, "it");
    assert_eq!(info.metadata["code"], "1001");
    assert_eq!(info.metadata["trace_id"], trace_of(not_found));
    assert_eq!(not_found.status, SpanStatus::Unset);
    assert_eq!(attr(not_found, "error.type"), None);
    assert!(
        not_found.events.iter().any(|e| e.name == "exception"),
        "the error is recorded: {not_found:#?}"
    );
    let not_found_client = client_spans
        .iter()
        .find(|c| c.span_context.span_id() == not_found.parent_span_id)
        .unwrap();
    assert!(matches!(not_found_client.status, SpanStatus::Error { .. }));
    assert_eq!(
        attr(not_found_client, "error.type").as_deref(),
        Some("NOT_FOUND")
    );

    // A status of the handler's own: its code and (masked) message kept,
    // details added.
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(denied.message(), "not for b***@example.com");
    let info = details(&denied);
    assert_eq!(info.reason, "FORBIDDEN");
    assert_eq!(info.metadata["code"], "4030");
    assert_eq!(
        info.metadata["trace_id"],
        trace_of(by_status("PERMISSION_DENIED"))
    );

    // A panic: INTERNAL, code 5000, nothing of its text anywhere; an error
    // on the server span.
    assert_eq!(panicked.code(), Code::Internal);
    let info = details(&panicked);
    assert_eq!(info.metadata["code"], "5000");
    let internal = by_status("INTERNAL");
    assert_eq!(info.metadata["trace_id"], trace_of(internal));
    let answer = format!(
        "{} {:?} {:?} {:?}",
        panicked.message(),
        String::from_utf8_lossy(panicked.details()),
        panicked.metadata(),
        info
    );
    for text in ["greeter crashed", "alice", "example.com"] {
        assert!(!answer.contains(text), "{text:?} in {answer}");
    }
    assert!(matches!(internal.status, SpanStatus::Error { .. }));
    assert_eq!(attr(internal, "error.type").as_deref(), Some("INTERNAL"));
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_the_server_does_not_know_is_named_other() {
    let spans = InMemoryExporter::default();
    let engine = memory_engine(quiet_config().build().unwrap(), &spans);
    let (addr, _server) = serve(&engine, Arc::new(tokio::sync::Semaphore::new(0))).await;
    let mut grpc = tonic::client::Grpc::new(channel(addr).await);
    // No such service (tonic's router answers), no such method of a
    // service (the service's own fallback answers).
    let paths = ["/no.Such/Method", "/helloworld.Greeter/SayGoodbye"];
    for path in paths {
        grpc.ready().await.unwrap();
        let unknown = grpc
            .unary::<HelloRequest, HelloReply, _>(
                tonic::Request::new(HelloRequest::default()),
                http::uri::PathAndQuery::from_static(path),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), Code::Unimplemented, "{path}");
        assert_eq!(details(&unknown).metadata["code"], "5000");
    }
    engine.force_flush();
    let exported = spans.wait_for(2, Duration::from_secs(10));
    assert_eq!(exported.len(), 2);
    for (span, path) in exported.iter().zip(paths) {
        assert_eq!(span.name, "grpc");
        assert_eq!(attr(span, "rpc.method").as_deref(), Some("_OTHER"));
        assert_eq!(
            attr(span, "rpc.method_original").as_deref(),
            Some(&path[1..])
        );
        assert_eq!(
            attr(span, "rpc.response.status_code").as_deref(),
            Some("UNIMPLEMENTED")
        );
    }
    engine.shutdown();
}

async fn stream(addr: SocketAddr, name: &str) -> Result<tonic::Streaming<HelloReply>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel(addr).await);
    grpc.ready().await.unwrap();
    grpc.server_streaming::<HelloRequest, HelloReply, _>(
        tonic::Request::new(HelloRequest {
            name: name.to_owned(),
        }),
        http::uri::PathAndQuery::from_static("/test.Counter/Count"),
        tonic_prost::ProstCodec::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

/// The one span exported after a failed call: its trace is the one the
/// error details name, its status code `status`.
fn failed_span(
    engine: &Engine,
    spans: &InMemoryExporter,
    info: &tonic_types::ErrorInfo,
    status: &str,
) -> SpanData {
    engine.force_flush();
    let span = spans.wait_for(1, Duration::from_secs(10)).remove(0);
    assert_eq!(
        info.metadata["trace_id"],
        span.span_context.trace_id().to_string()
    );
    assert_eq!(
        attr(&span, "rpc.response.status_code").as_deref(),
        Some(status)
    );
    span
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_ends_its_span_when_the_stream_ends() {
    let spans = InMemoryExporter::default();
    let engine = memory_engine(quiet_config().build().unwrap(), &spans);
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (addr, _server) = serve(&engine, gate.clone()).await;

    let mut replies = stream(addr, "3").await.unwrap();
    assert_eq!(replies.message().await.unwrap().unwrap().message, "1");
    assert_eq!(replies.message().await.unwrap().unwrap().message, "2");
    // The handler has answered, the stream has not ended: no span yet.
    engine.force_flush();
    assert!(spans.spans().is_empty(), "{:#?}", spans.spans());
    gate.add_permits(1);
    assert_eq!(replies.message().await.unwrap().unwrap().message, "3");
    assert!(replies.message().await.unwrap().is_none());
    engine.force_flush();
    let exported = spans.wait_for(1, Duration::from_secs(10));
    let span = &exported[0];
    assert_eq!(span.name, "test.Counter/Count");
    assert_eq!(
        attr(span, "rpc.response.status_code").as_deref(),
        Some("OK")
    );
    assert_eq!(
        attr(span, "faultline.rpc.messages.sent").as_deref(),
        Some("3")
    );
    assert_eq!(
        attr(span, "faultline.rpc.messages.received").as_deref(),
        Some("1")
    );

    // A stream failing after one message: its trailers carry the details.
    spans.reset();
    let mut replies = stream(addr, "fail").await.unwrap();
    assert_eq!(replies.message().await.unwrap().unwrap().message, "1");
    let lost = replies.message().await.unwrap_err();
    assert_eq!(lost.code(), Code::DataLoss);
    assert_eq!(lost.message(), "lost the rest at c***@example.com");
    let info = details(&lost);
    assert_eq!(info.metadata["code"], "5000");
    let span = &failed_span(&engine, &spans, &info, "DATA_LOSS");
    assert_eq!(attr(span, "error.type").as_deref(), Some("DATA_LOSS"));
    assert!(matches!(span.status, SpanStatus::Error { .. }));
    assert_eq!(
        attr(span, "faultline.rpc.messages.sent").as_deref(),
        Some("1")
    );

    // faultline's error in the middle of a stream: the answer keeps the
    // error's name and code (tonic passes the status's headers only, so
    // the message is the code's title).
    spans.reset();
    let mut replies = stream(addr, "missing").await.unwrap();
    assert_eq!(replies.message().await.unwrap().unwrap().message, "1");
    let missing = replies.message().await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(!missing.message().contains("dave"), "{missing:?}");
    let info = details(&missing);
    assert_eq!(info.reason, "USER_NOT_FOUND");
    assert_eq!(info.domain, "it");
    assert_eq!(info.metadata["code"], "1001");
    failed_span(&engine, &spans, &info, "NOT_FOUND");

    // A panic while the stream is polled, after the handler answered:
    // INTERNAL, code 5000, nothing of its text; the span records it and
    // ends; the server goes on serving.
    spans.reset();
    let mut replies = stream(addr, "crash").await.unwrap();
    assert_eq!(replies.message().await.unwrap().unwrap().message, "1");
    assert_eq!(replies.message().await.unwrap().unwrap().message, "2");
    gate.add_permits(1);
    let crashed = replies.message().await.unwrap_err();
    assert_eq!(crashed.code(), Code::Internal);
    let info = details(&crashed);
    assert_eq!(info.metadata["code"], "5000");
    let answer = format!("{crashed:?} {info:?}");
    for text in ["counter crashed", "erin", "example.com"] {
        assert!(!answer.contains(text), "{text:?} in {answer}");
    }
    let span = &failed_span(&engine, &spans, &info, "INTERNAL");
    assert!(matches!(span.status, SpanStatus::Error { .. }));
    assert!(
        span.events.iter().any(|e| e.name == "exception"),
        "the panic is recorded: {span:#?}"
    );
    assert_eq!(
        attr(span, "faultline.rpc.messages.sent").as_deref(),
        Some("2")
    );
    let mut replies = stream(addr, "1").await.unwrap();
    assert_eq!(replies.message().await.unwrap().unwrap().message, "1");
    engine.shutdown();
}

const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn call_with_traceparent(engine: &Engine, spans: &InMemoryExporter) -> SpanData {
    let (addr, _server) = serve(engine, Arc::new(tokio::sync::Semaphore::new(0))).await;
    let mut client = GreeterClient::new(channel(addr).await);
    let mut request = tonic::Request::new(HelloRequest {
        name: "world".to_owned(),
    });
    request
        .metadata_mut()
        .insert("traceparent", INCOMING.parse().unwrap());
    client.say_hello(request).await.unwrap();
    engine.force_flush();
    spans.wait_for(1, Duration::from_secs(10)).remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_context_is_the_parent_only_for_a_trusted_peer() {
    let spans = InMemoryExporter::default();
    let engine = memory_engine(quiet_config().build().unwrap(), &spans);
    let trusted = call_with_traceparent(&engine, &spans).await;
    assert_eq!(
        trusted.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(trusted.parent_span_id.to_string(), "00f067aa0ba902b7");
    engine.shutdown();

    let spans = InMemoryExporter::default();
    let config = quiet_config()
        .trusted_peers([PeerNet::parse("10.0.0.0/8").unwrap()])
        .build()
        .unwrap();
    let engine = memory_engine(config, &spans);
    let untrusted = call_with_traceparent(&engine, &spans).await;
    assert_ne!(
        untrusted.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        untrusted.parent_span_id,
        opentelemetry::trace::SpanId::INVALID
    );
    let link = untrusted.links.iter().next().expect("a link to the caller");
    assert_eq!(link.span_context.span_id().to_string(), "00f067aa0ba902b7");
    engine.shutdown();
}

/// The `trace_id` of a `missing` call's details, with `config`.
async fn missing_trace_id(config: TracingConfig) -> (Option<String>, Vec<SpanData>) {
    let spans = InMemoryExporter::default();
    let engine = memory_engine(config, &spans);
    let (addr, _server) = serve(&engine, Arc::new(tokio::sync::Semaphore::new(0))).await;
    let mut client = GreeterClient::new(channel(addr).await);
    let say = |name: &str| HelloRequest {
        name: name.to_owned(),
    };
    client.say_hello(say("world")).await.unwrap();
    let missing = client.say_hello(say("missing")).await.unwrap_err();
    engine.force_flush();
    let trace_id = details(&missing).metadata.get("trace_id").cloned();
    let exported = spans.spans();
    engine.shutdown();
    (trace_id, exported)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsampled_error_is_kept_and_its_trace_id_given_only_when_exported() {
    let kept = quiet_config()
        .sample_rate(0.0)
        .keep_errors(true)
        .build()
        .unwrap();
    let (trace_id, exported) = missing_trace_id(kept).await;
    let trace_id = trace_id.expect("a kept error's trace id");
    assert_eq!(exported.len(), 1, "only the failed call: {exported:#?}");
    assert_eq!(exported[0].span_context.trace_id().to_string(), trace_id);
    assert_eq!(
        attr(&exported[0], "rpc.response.status_code").as_deref(),
        Some("NOT_FOUND")
    );

    let dropped = quiet_config()
        .sample_rate(0.0)
        .keep_errors(false)
        .build()
        .unwrap();
    let (trace_id, exported) = missing_trace_id(dropped).await;
    assert_eq!(trace_id, None);
    assert!(exported.is_empty());
}

/// What a correlator heard.
#[derive(Debug, Default)]
struct Heard(Mutex<Vec<String>>);

impl Correlator for Heard {
    fn on_request_end(&self, outcome: &RequestOutcome<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("request {} {}", outcome.route, outcome.status));
    }

    fn on_rpc_end(&self, outcome: &RpcOutcome<'_>) {
        let r = &outcome.request;
        self.0.lock().unwrap().push(format!(
            "rpc {} {} {} status={} error={:?} sampled={}",
            outcome.system,
            outcome.method,
            outcome.status_code,
            r.status,
            r.error.as_ref().and_then(|e| e.code).map(|c| c.code()),
            r.sampled
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlators_hear_each_call_as_an_rpc() {
    let spans = InMemoryExporter::default();
    let heard = Arc::new(Heard::default());
    let engine = Engine::builder(quiet_config().build().unwrap())
        .exporter(spans.clone())
        .correlator(heard.clone())
        .install_global(false)
        .build()
        .unwrap();
    let (addr, _server) = serve(&engine, Arc::new(tokio::sync::Semaphore::new(0))).await;
    let mut client = GreeterClient::new(channel(addr).await);
    for name in ["world", "missing", "panic"] {
        let _ = client
            .say_hello(HelloRequest {
                name: name.to_owned(),
            })
            .await;
    }
    assert_eq!(
        *heard.0.lock().unwrap(),
        [
            format!("rpc grpc {METHOD} OK status=200 error=None sampled=true"),
            format!("rpc grpc {METHOD} NOT_FOUND status=404 error=Some(1001) sampled=true"),
            format!("rpc grpc {METHOD} INTERNAL status=500 error=Some(5000) sampled=true"),
        ]
    );
    engine.shutdown();
}

/// The Python client's answer and spans for `names`, against the gRPC
/// reference service.
fn python_calls(svc: &Service, names: &[&str]) -> Value {
    run_python(
        "grpc_client.py",
        &json!({ "target": format!("127.0.0.1:{}", svc.port), "names": names }),
    )
}

#[test]
fn a_python_grpcio_client_continues_its_trace_into_the_service_and_decodes_the_details() {
    let svc = Service::start_example("grpc_service", &[], &[]);
    let out = python_calls(&svc, &["world", "missing", "panic", "downstream"]);
    let calls = out["calls"].as_array().unwrap();
    let python_spans = out["spans"].as_array().unwrap();
    assert_eq!(python_spans.len(), 4, "{out:#}");
    let call = |name: &str| calls.iter().find(|c| c["name"] == name).unwrap();
    let python_span = |trace_id: &str| {
        python_spans
            .iter()
            .find(|s| s["trace_id"] == trace_id)
            .unwrap_or_else(|| panic!("no Python span in trace {trace_id}: {out:#}"))
    };
    // Each call's server span (the first of its trace to start) is the
    // child of the Python client's span.
    let server_span = |python: &Value, count: usize| {
        let trace_id = python["trace_id"].as_str().unwrap();
        let spans = svc.trace(trace_id, count);
        let span = spans
            .iter()
            .find(|s| s["parent_span_id"] == python["span_id"])
            .unwrap_or_else(|| panic!("no span of ours under {python}: {spans:#?}"))
            .clone();
        assert_eq!(span["kind"], "SERVER");
        assert_eq!(span["name"], METHOD);
        assert_eq!(python["kind"], "CLIENT");
        (span, spans)
    };

    assert_eq!(call("world")["code"], "OK");
    assert_eq!(call("world")["message"], "Hello world");
    let (ok, _) = server_span(&python_spans[0], 1);
    let a = &ok["attributes"];
    assert_eq!(a["rpc.system.name"], "grpc");
    assert_eq!(a["rpc.method"], METHOD);
    assert_eq!(a["rpc.response.status_code"], "OK");
    assert_eq!(a["server.address"], "127.0.0.1");
    assert_eq!(a["server.port"], svc.port);
    assert_eq!(a["network.peer.address"], "127.0.0.1");

    // grpcio-status decoded the details: the status's code and message are
    // the call's (it checks), with the ErrorInfo.
    let missing = call("missing");
    assert_eq!(missing["code"], "NOT_FOUND");
    assert_eq!(missing["status"]["code"], 5);
    assert_eq!(missing["status"]["message"], missing["details"]);
    let info = &missing["status"]["error_info"][0];
    assert_eq!(info["reason"], "USER_NOT_FOUND");
    assert_eq!(info["metadata"]["code"], "1001");
    let trace_id = info["metadata"]["trace_id"].as_str().unwrap();
    let (not_found, _) = server_span(python_span(trace_id), 1);
    assert_eq!(
        not_found["attributes"]["rpc.response.status_code"],
        "NOT_FOUND"
    );

    let panicked = call("panic");
    assert_eq!(panicked["code"], "INTERNAL");
    assert_eq!(panicked["status"]["code"], 13);
    assert_eq!(panicked["status"]["message"], panicked["details"]);
    let info = &panicked["status"]["error_info"][0];
    assert_eq!(info["metadata"]["code"], "5000");
    let whole = panicked.to_string();
    for text in ["greeter crashed", "alice", "example.com"] {
        assert!(!whole.contains(text), "{text:?} in {whole}");
    }
    let trace_id = info["metadata"]["trace_id"].as_str().unwrap();
    let (internal, _) = server_span(python_span(trace_id), 1);
    assert_eq!(
        internal["attributes"]["rpc.response.status_code"],
        "INTERNAL"
    );
    assert_eq!(internal["status"], "error");

    // downstream: Python -> our server span -> our CLIENT span -> the
    // callee's server span, one trace.
    let downstream = call("downstream");
    assert_eq!(downstream["code"], "OK");
    assert_eq!(downstream["message"], "Hello downstream: Hello hello");
    let (outer, spans) = server_span(&python_spans[3], 3);
    let client = spans
        .iter()
        .find(|s| s["kind"] == "CLIENT")
        .unwrap_or_else(|| panic!("no CLIENT span: {spans:#?}"));
    assert_eq!(client["parent_span_id"], outer["span_id"]);
    assert_eq!(client["attributes"]["rpc.method"], METHOD);
    assert_eq!(client["attributes"]["rpc.response.status_code"], "OK");
    let callee = spans
        .iter()
        .find(|s| s["kind"] == "SERVER" && s["parent_span_id"] == client["span_id"])
        .unwrap_or_else(|| panic!("the callee is not the CLIENT span's child: {spans:#?}"));
    assert_eq!(callee["name"], METHOD);
    assert!(svc.stop().0, "the service stops cleanly on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_gets_the_rpc_duration_histogram_with_exemplars_and_the_errors() {
    use faultline::prometheus::{Prometheus, PrometheusConfig};

    let spans = InMemoryExporter::default();
    let prometheus = Prometheus::new(PrometheusConfig::default());
    let engine = Engine::builder(quiet_config().build().unwrap())
        .exporter(spans.clone())
        .correlator(prometheus.clone())
        .install_global(false)
        .build()
        .unwrap();
    let (addr, _server) = serve(&engine, Arc::new(tokio::sync::Semaphore::new(0))).await;
    let mut client = GreeterClient::new(channel(addr).await);
    for name in ["world", "world", "missing"] {
        let _ = client
            .say_hello(HelloRequest {
                name: name.to_owned(),
            })
            .await;
    }
    engine.force_flush();
    let exported = spans.wait_for(3, Duration::from_secs(10));
    let failed = exported
        .iter()
        .find(|s| attr(s, "rpc.response.status_code").as_deref() == Some("NOT_FOUND"))
        .unwrap();
    let trace_id = failed.span_context.trace_id().to_string();

    let body = engine
        .render_metrics(Some("application/openmetrics-text"))
        .unwrap()
        .body;
    // Parsed by the official Python client (tests/peers/prometheus_parse.py).
    let families = crate::prometheus::parse("openmetrics", &body);
    let samples = |name: &str| crate::prometheus::samples(&families, name);
    let count = |status: &str| {
        samples("rpc_server_call_duration_seconds_count")
            .into_iter()
            .find(|s| {
                s["labels"]["rpc_response_status_code"] == status
                    && s["labels"]["rpc_method"] == METHOD
                    && s["labels"]["rpc_system_name"] == "grpc"
            })
            .map(|s| s["value"].as_f64().unwrap())
    };
    assert_eq!(count("OK"), Some(2.0), "{body}");
    assert_eq!(count("NOT_FOUND"), Some(1.0), "{body}");
    assert!(
        samples("rpc_server_call_duration_seconds_bucket")
            .iter()
            .any(|s| s["labels"]["rpc_response_status_code"] == "NOT_FOUND"
                && s["exemplar"]["labels"]["trace_id"] == trace_id.as_str()),
        "no exemplar for {trace_id}:\n{body}"
    );
    let errors = samples("faultline_errors_total");
    let coded = errors
        .iter()
        .find(|s| s["labels"]["error_code"] == "1001")
        .unwrap_or_else(|| panic!("no error counter:\n{body}"));
    assert_eq!(coded["labels"]["http_route"], METHOD);
    assert_eq!(coded["exemplar"]["labels"]["trace_id"], trace_id.as_str());
    // Calls are not HTTP requests.
    assert!(
        samples("http_server_request_duration_seconds_count").is_empty(),
        "{body}"
    );
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_layer_continues_the_trace_into_a_python_grpcio_server() {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::process::{Command, Stdio};

    let mut python = Command::new("python3")
        .arg(crate::peers::root().join("tests/peers/grpc_server.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 (run scripts/test, which installs the peers)");
    python
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"calls": 2}"#)
        .unwrap();
    let mut lines = BufReader::new(python.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], first["port"].as_u64().unwrap() as u16));

    let spans = InMemoryExporter::default();
    let engine = memory_engine(quiet_config().build().unwrap(), &spans);
    let traced = ClientLayer::new(engine.clone())
        .with_server(&endpoint(addr))
        .layer(channel(addr).await);
    let mut client = GreeterClient::new(traced);
    let say = |name: &str| HelloRequest {
        name: name.to_owned(),
    };
    let reply = client.say_hello(say("rust")).await.unwrap();
    assert_eq!(reply.into_inner().message, "Hello rust");
    let missing = client.say_hello(say("missing")).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let last = tokio::task::spawn_blocking(move || {
        let last = lines.next().unwrap().unwrap();
        let _ = python.wait();
        last
    })
    .await
    .unwrap();
    let theirs: Value = serde_json::from_str(&last).unwrap();
    let theirs = theirs["spans"].as_array().unwrap();
    engine.force_flush();
    let ours = spans.wait_for(2, Duration::from_secs(10));
    assert_eq!((ours.len(), theirs.len()), (2, 2), "{theirs:#?}");
    for client_span in &ours {
        assert_eq!(client_span.span_kind, SpanKind::Client);
        let id = client_span.span_context.span_id().to_string();
        let server = theirs
            .iter()
            .find(|s| s["parent_span_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no Python span under {id}: {theirs:#?}"));
        assert_eq!(server["kind"], "SERVER");
        assert_eq!(
            server["trace_id"],
            client_span.span_context.trace_id().to_string()
        );
    }
    let failed = ours
        .iter()
        .find(|s| attr(s, "rpc.response.status_code").as_deref() == Some("NOT_FOUND"))
        .expect("the callee's NOT_FOUND recorded");
    assert!(matches!(failed.status, SpanStatus::Error { .. }));
    assert_eq!(attr(failed, "error.type").as_deref(), Some("NOT_FOUND"));
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentry_gets_the_errors_and_panics_of_calls_with_their_trace_context() {
    use faultline::sentry::{Sentry, SentryConfig};

    let (sentry_port, log) = crate::sentry::start_fake_sentry().await;
    // USER_NOT_FOUND (a 404) is a warning.
    let config = SentryConfig::new()
        .dsn(format!(
            "http://3f9c2a7e5b1d4c6e8a0b2d4f6e8c0a1b@127.0.0.1:{sentry_port}/42"
        ))
        .min_severity(faultline::error::Severity::Warning);
    let tracing = quiet_config().build().unwrap();
    let sentry = Sentry::new(config, faultline::masking::from_config(&tracing)).unwrap();
    let spans = InMemoryExporter::default();
    let engine = Engine::builder(tracing)
        .exporter(spans.clone())
        .correlator(sentry)
        .install_global(false)
        .build()
        .unwrap();
    let (addr, _server) = serve(&engine, Arc::new(tokio::sync::Semaphore::new(0))).await;
    let mut client = GreeterClient::new(channel(addr).await);
    let mut trace_ids = Vec::new();
    for name in ["missing", "panic"] {
        let error = client
            .say_hello(HelloRequest {
                name: name.to_owned(),
            })
            .await
            .unwrap_err();
        trace_ids.push(details(&error).metadata["trace_id"].clone());
    }
    let flushing = engine.clone();
    tokio::task::spawn_blocking(move || flushing.force_flush())
        .await
        .unwrap();
    let exported = spans.wait_for(2, Duration::from_secs(10));
    let log_for_wait = log.clone();
    let events =
        tokio::task::spawn_blocking(move || crate::sentry::wait_for_events(&log_for_wait, "42", 2))
            .await
            .unwrap();
    for (trace_id, kind) in trace_ids.iter().zip(["faultline", "panic"]) {
        let event = events
            .iter()
            .find(|e| e["contexts"]["trace"]["trace_id"] == trace_id.as_str())
            .unwrap_or_else(|| panic!("no event for {trace_id}: {events:#?}"));
        let server = exported
            .iter()
            .find(|s| s.span_context.trace_id().to_string() == *trace_id)
            .unwrap();
        assert_eq!(
            event["contexts"]["trace"]["span_id"],
            server.span_context.span_id().to_string()
        );
        assert_eq!(event["exception"]["values"][0]["mechanism"]["type"], kind);
        // Told in RPC terms, not as an HTTP request.
        assert_eq!(event["transaction"], METHOD);
        let trace = &event["contexts"]["trace"];
        assert_eq!(trace["op"], "grpc.server");
        assert_eq!(trace["description"], METHOD);
        let (status, span_status, code) = if kind == "panic" {
            ("INTERNAL", "internal_error", "5000")
        } else {
            ("NOT_FOUND", "not_found", "1001")
        };
        assert_eq!(trace["status"], span_status);
        let tags = &event["tags"];
        assert_eq!(tags["rpc.system.name"], "grpc");
        assert_eq!(tags["rpc.method"], METHOD);
        assert_eq!(tags["rpc.response.status_code"], status);
        assert_eq!(tags["error.code"], code);
        for http_tag in [
            "http.route",
            "http.request.method",
            "http.response.status_code",
        ] {
            assert!(tags.get(http_tag).is_none(), "{http_tag} in {event:#}");
        }
        assert!(event.get("request").is_none(), "{event:#}");
        let text = event.to_string();
        for raw in ["alice@example.com", "dave@example.com"] {
            assert!(!text.contains(raw), "{raw} in {text}");
        }
        if kind == "faultline" {
            assert_eq!(
                event["exception"]["values"][0]["value"],
                "no user for d***@example.com"
            );
        }
    }
    // Sentry's own envelope parser reads the same events.
    let decoded = run_python(
        "sentry_envelope.py",
        &json!({ "envelopes": crate::sentry::envelopes_hex(&log, "42") }),
    );
    let peer_events: Vec<&Value> = decoded["envelopes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["items"].as_array().unwrap())
        .filter(|i| i["type"] == "event")
        .map(|i| &i["event"])
        .collect();
    assert_eq!(peer_events.len(), 2, "{decoded:#}");
    for event in peer_events {
        assert_eq!(event["transaction"], METHOD);
        assert_eq!(event["contexts"]["trace"]["op"], "grpc.server");
        assert_eq!(event["tags"]["rpc.method"], METHOD);
        assert!(
            trace_ids.contains(
                &event["contexts"]["trace"]["trace_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            )
        );
    }
    engine.shutdown();
}

#[test]
fn a_bad_setting_stops_the_grpc_service_with_one_line_naming_its_variable() {
    let out = std::process::Command::new(crate::service::example_binary("grpc_service"))
        .args(["--port", "0"])
        .env("OTEL_TRACES_SAMPLER", "sometimes")
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("OTEL_TRACES_SAMPLER"), "{stderr}");
}

/// The gRPC service logs through faultline's subscriber, as the HTTP one
/// does: `FAULTLINE_LOG_FORMAT=json` lines, and a panic's line (masked) is
/// an event of the call's server span with its trace and span ids at the
/// top level.
#[test]
fn the_grpc_services_panic_line_is_json_with_the_calls_ids() {
    let svc = Service::start_example(
        "grpc_service",
        &[],
        &[("FAULTLINE_LOG_FORMAT", "json"), ("RUST_LOG", "info")],
    );
    let out = python_calls(&svc, &["panic"]);
    let panicked = &out["calls"][0];
    assert_eq!(panicked["code"], "INTERNAL", "{out:#}");
    let trace_id = panicked["status"]["error_info"][0]["metadata"]["trace_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no trace id: {out:#}"))
        .to_owned();
    let spans = svc.trace(&trace_id, 1);
    let server = spans
        .iter()
        .find(|s| s["kind"] == "SERVER")
        .unwrap_or_else(|| panic!("no server span: {spans:#?}"))
        .clone();
    let stopped = svc.terminate();
    assert!(stopped.clean(), "{:?}", stopped.lines);
    let line = stopped
        .stderr()
        .into_iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("request handler panicked"))
        })
        .unwrap_or_else(|| panic!("no JSON panic line: {:#?}", stopped.lines));
    assert_eq!(line["level"], "ERROR", "{line}");
    assert_eq!(line["trace_id"], trace_id.as_str(), "{line}");
    assert_eq!(line["span_id"], server["span_id"], "{line}");
    assert_eq!(
        line["message"],
        "request handler panicked: greeter crashed for a***@example.com"
    );
    let all = stopped.lines.join("\n");
    assert!(!all.contains("alice@example.com"), "{all}");
    let events = server["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["name"] == line["message"]),
        "{server:#}"
    );
}

/// `FAULTLINE_EXCLUDED_ROUTES` applies to gRPC methods by their path
/// (`/package.Service/Method`, or a `/package.Service/*` prefix): an
/// excluded call gets no span and no metric series, its errors are still
/// answered with their details (without a trace id); the other methods
/// are traced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_methods_get_no_span_and_no_metrics() {
    use faultline::prometheus::{Prometheus, PrometheusConfig};

    let spans = InMemoryExporter::default();
    let prometheus = Prometheus::new(PrometheusConfig::default());
    let config = quiet_config()
        .excluded_routes(["/helloworld.Greeter/*", "/grpc.health.v1.Health/Check"])
        .build()
        .unwrap();
    let engine = Engine::builder(config)
        .exporter(spans.clone())
        .correlator(prometheus.clone())
        .install_global(false)
        .build()
        .unwrap();
    let (addr, _server) = serve(&engine, Arc::new(tokio::sync::Semaphore::new(0))).await;
    let mut client = GreeterClient::new(channel(addr).await);
    let say = |name: &str| HelloRequest {
        name: name.to_owned(),
    };
    let ok = client.say_hello(say("world")).await.unwrap();
    assert_eq!(ok.into_inner().message, "Hello world");
    let missing = client.say_hello(say("missing")).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let info = details(&missing);
    assert_eq!(info.reason, "USER_NOT_FOUND");
    assert!(!info.metadata.contains_key("trace_id"), "{info:?}");
    let panicked = client.say_hello(say("panic")).await.unwrap_err();
    assert_eq!(panicked.code(), Code::Internal);

    // A traced method after them: once its span is out, theirs would be
    // too, had they any.
    let mut stream = stream(addr, "1").await.unwrap();
    while stream.message().await.unwrap().is_some() {}
    engine.force_flush();
    let exported = spans.wait_for(1, Duration::from_secs(10));
    let servers = server_spans(&exported);
    assert_eq!(servers.len(), 1, "{exported:#?}");
    assert_eq!(servers[0].name, "test.Counter/Count");
    assert!(
        exported.iter().all(|s| !s.name.starts_with("helloworld.")),
        "{exported:#?}"
    );

    let body = engine
        .render_metrics(Some("application/openmetrics-text"))
        .unwrap()
        .body;
    assert!(
        body.contains(r#"rpc_method="test.Counter/Count""#),
        "{body}"
    );
    assert!(!body.contains("helloworld.Greeter"), "{body}");
    engine.shutdown();
}
