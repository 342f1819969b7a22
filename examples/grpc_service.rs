//! The gRPC reference service: `helloworld.Greeter` (gRPC's own example)
//! on tonic, traced by faultline's tonic adapter.
//!
//! ```text
//! cargo run --release --example grpc_service -- [--port 50051] [--no-tracing]
//! ```
//!
//! Without `--port`, `PORT` or 50051 (`--port 0` picks a free port); it
//! listens on `0.0.0.0` and, once listening, prints
//! `listening on http://127.0.0.1:PORT` on standard output (its SIGINT and
//! SIGTERM handlers are in place by then). `SayHello` answers `Hello NAME`;
//! the name `missing` fails with `NOT_FOUND` (code 1001, `USER_NOT_FOUND`),
//! `panic` panics, and `downstream` calls this same service's `SayHello`
//! (name `hello`) through the traced tonic client. Configuration comes from
//! the environment (`OTEL_*`, `FAULTLINE_*`, `SENTRY_DSN`) as for the HTTP
//! reference service, and SIGINT/SIGTERM shut it down the same way: calls in
//! flight get 3 s, then every pending span is flushed. It logs to standard
//! error through faultline's subscriber, as the HTTP reference service does
//! (`RUST_LOG`, `FAULTLINE_LOG_FORMAT`, the current span's ids, masked).

#[path = "grpc/helloworld.rs"]
mod helloworld;
#[path = "common/process.rs"]
mod process;

use std::process::ExitCode;

use faultline::config::ExporterKind;
use faultline::error::{AppError, ErrorCode};
use faultline::setup::{Faultline, Setup};
use faultline::tonic::ClientLayer;
use helloworld::{Greeter, GreeterClient, GreeterServer, HelloReply, HelloRequest};
use http::StatusCode;
use process::{
    Args, DROP_DEADLINE, Stop, drain, init_plain_logging, log_panics, set_panic_masker, shut_down,
};
use tonic::transport::{Channel, Endpoint, Server};
use tower::Layer as _;

/// `SayHello` with the name `missing`.
const USER_NOT_FOUND: ErrorCode =
    ErrorCode::new(1001, "USER_NOT_FOUND", StatusCode::NOT_FOUND).with_title("User not found");

/// How long calls in flight may run on after SIGINT/SIGTERM.
struct Hello {
    /// This service, for `downstream`.
    channel: Channel,
    /// The traced client's layer (`None` with `--no-tracing`).
    client: Option<ClientLayer>,
}

#[tonic::async_trait]
impl Greeter for Hello {
    async fn say_hello(
        &self,
        request: tonic::Request<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, tonic::Status> {
        let name = request.into_inner().name;
        let message = match name.as_str() {
            "missing" => {
                return Err(faultline::tonic::status(AppError::new(
                    USER_NOT_FOUND,
                    format!("no user named {name}"),
                )));
            }
            "panic" => panic!("greeter crashed for alice@example.com"),
            "downstream" => {
                let hello = HelloRequest {
                    name: "hello".to_owned(),
                };
                let reply = match &self.client {
                    Some(layer) => {
                        let traced = layer.layer(self.channel.clone());
                        GreeterClient::new(traced).say_hello(hello).await?
                    }
                    None => {
                        GreeterClient::new(self.channel.clone())
                            .say_hello(hello)
                            .await?
                    }
                };
                format!("Hello downstream: {}", reply.into_inner().message)
            }
            _ => format!("Hello {name}"),
        };
        Ok(tonic::Response::new(HelloReply { message }))
    }
}

fn main() -> ExitCode {
    log_panics();
    let args = match Args::parse("grpc_service [--port 50051] [--no-tracing]", 50051, &[]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("grpc_service: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.tracing {
        init_plain_logging();
    }
    let faultline = if args.tracing {
        let setup = Setup::new("faultline-grpc-service")
            .configure(|c| {
                c.service_version(env!("CARGO_PKG_VERSION"))
                    .exporters([ExporterKind::OTLP])
            })
            .log_writer(
                std::io::stderr,
                std::io::IsTerminal::is_terminal(&std::io::stderr()),
            );
        match setup.init() {
            Ok(f) => {
                set_panic_masker(faultline::masking::from_config(f.engine().config()));
                Some(f)
            }
            Err(e) => {
                eprintln!("grpc_service: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async {
        let listener = match process::listen("grpc_service", args.port).await {
            Ok(l) => l,
            Err(code) => return code,
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(args.port);
        let own: http::Uri = format!("http://127.0.0.1:{port}")
            .parse()
            .expect("this service's address");
        let greeter = Hello {
            channel: Endpoint::from(own.clone()).connect_lazy(),
            client: faultline
                .as_ref()
                .map(|f| f.tonic_client_layer().with_server(&own)),
        };
        let stop = match Stop::listen() {
            Ok(stop) => stop,
            Err(e) => {
                eprintln!("grpc_service: cannot listen for SIGINT/SIGTERM: {e}");
                return ExitCode::from(1);
            }
        };
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let signal = stop.clone().requested();
        let service = GreeterServer::new(greeter);
        let traced = faultline.as_ref().map(Faultline::tonic_layer);
        let serving = async move {
            match traced {
                Some(layer) => {
                    Server::builder()
                        .layer(layer)
                        .add_service(service)
                        .serve_with_incoming_shutdown(incoming, signal)
                        .await
                }
                None => {
                    Server::builder()
                        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
                            tonic::Status::internal(faultline::request::INTERNAL_DETAIL)
                                .into_http::<tonic::body::Body>()
                        }))
                        .add_service(service)
                        .serve_with_incoming_shutdown(incoming, signal)
                        .await
                }
            }
        };
        println!("listening on http://127.0.0.1:{port}");
        let served = drain(serving, stop).await;
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("serving stopped: {e}");
                ExitCode::from(1)
            }
        }
    });
    runtime.shutdown_timeout(DROP_DEADLINE);
    if let Some(faultline) = faultline {
        shut_down(faultline);
    }
    code
}
