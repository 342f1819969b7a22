//! faultline's gRPC adapter: tower layers for tonic servers and clients.
//!
//! ```no_run
//! use faultline_engine::error::{AppError, ErrorCode};
//! use faultline_engine::Engine;
//! use faultline_engine::config::{ExporterKind, TracingConfig};
//! use faultline_tonic::FaultlineLayer;
//!
//! const USER_NOT_FOUND: ErrorCode =
//!     ErrorCode::new(1001, "USER_NOT_FOUND", http::StatusCode::NOT_FOUND);
//!
//! // In a service method: an application error becomes a `tonic::Status`
//! // (NOT_FOUND here) that the layer answers with the masked message and
//! // a `google.rpc.ErrorInfo` carrying the code and the trace id.
//! fn find(name: &str) -> Result<String, tonic::Status> {
//!     Err(faultline_tonic::status(AppError::new(USER_NOT_FOUND, format!("no user {name}"))))
//! }
//!
//! # async fn run<S>(greeter: S) -> Result<(), Box<dyn std::error::Error>>
//! # where S: tower::Service<http::Request<tonic::body::Body>, Error = std::convert::Infallible,
//! #     Response = http::Response<tonic::body::Body>> + tonic::server::NamedService + Clone + Send + Sync + 'static,
//! #     S::Future: Send + 'static {
//! // The engine alone knows the console exporter; in an application,
//! // `faultline::setup::engine_builder(config)` registers the exporters
//! // compiled into faultline (`otlp`, the default, `jaeger`, ...) by name.
//! let config = TracingConfig::builder()
//!     .service_name("users")
//!     .exporters([ExporterKind::CONSOLE])
//!     .build()?;
//! let engine = Engine::builder(config).build()?;
//! tonic::transport::Server::builder()
//!     .layer(FaultlineLayer::new(engine.clone()))
//!     .add_service(greeter)
//!     .serve("0.0.0.0:50051".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! For every call the server layer extracts the incoming trace context
//! from the metadata (the engine's propagators and trusted-peer rules),
//! starts a SERVER span named after the method
//! (`helloworld.Greeter/SayHello`) with the RPC semantic conventions
//! (`rpc.system.name`, `rpc.method`, `rpc.response.status_code`,
//! `server.address`/`port`, `network.peer.address`/`port`), runs the
//! handler inside the span's context, and ends the span when the answer
//! ends (for a streaming answer, when the stream ends), with the number of
//! messages received and sent (`faultline.rpc.messages.received`/`sent`:
//! the conventions have no attribute for them). An error answer carries
//! faultline's error model: `grpc-status-details-bin` holds a
//! `google.rpc.Status` (the call's code and message) with an `ErrorInfo`
//! (reason: the error's name; metadata: `code` and, when the trace is
//! exported, `trace_id`); a panic is answered `INTERNAL`, code 5000, with
//! nothing of its text, whether the handler panicked or the response
//! stream did while it was polled (the stream is polled inside the span's
//! context; its panic ends it with those trailers). An error in the middle
//! of a stream keeps the error's name and code when the stream yields
//! [`status`]`(error)`: tonic hands the layer the status's headers only,
//! so the details [`status`] already carries say them (the message is the
//! code's title; the span records the status, not the error). The
//! [`ClientLayer`] traces outgoing calls: CLIENT spans with the callee's
//! status and the messages sent and received.
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![forbid(unsafe_code)]

mod body;
mod client;
mod server;
mod status;

pub use body::TracedBody;
pub use client::{ClientEnd, ClientFuture, ClientLayer, ClientService};
pub use faultline_engine as engine;
pub use server::{FaultlineLayer, FaultlineService, ResponseFuture, ServerEnd};
pub use status::{code_for_http, code_name, http_for_code, is_server_error, status};
/// The tonic crate this adapter is built on, for code that names its types.
pub use tonic;
/// The tonic-types crate (`google.rpc` error details), for clients that
/// read the details.
pub use tonic_types;
